"""The cost cap of a design run: the search explores only architectures that the final phase
can afford at a useful width.

A design may cost at most ``multiple`` times the forward FLOPs per image of the costliest
hand-designed baseline, counted at the space's widths divided by ``width_divisor`` (the cost
width). The cap is worked out at plan time from the baselines' architectures alone (no
training), printed with the plan, recorded in ``design.json`` and handed to the search
(:class:`metaqnn.search.cost.CostMask`). In the final phase a design that fits the cap at the
cost width is never trained narrower than that (:func:`narrowest_divisor`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from envs.layers import Architecture
from envs.space import SearchSpace
from metaqnn.core.widths import forward_flops, rescale


@dataclass(frozen=True)
class CostCap:
    """A design run's cap on the forward FLOPs of what its search may build."""

    max_flops: float
    """FLOPs per image an architecture may cost before its classifier, at the cost width."""
    width_divisor: int
    """The cost width: the space's widths divided by this."""
    multiple: float
    """``max_flops`` as a multiple of the costliest baseline's FLOPs."""
    baseline: str
    """The costliest hand-designed baseline."""
    baseline_flops: int
    """Its forward FLOPs per image (full width, as written)."""

    def describe(self) -> str:
        """One line for the plan."""
        return (
            f"search cost cap: designs of at most {self.max_flops / 1e6:.1f} MFLOPs per image "
            f"at widths / {self.width_divisor} ({self.multiple:g}x the "
            f"{self.baseline_flops / 1e6:.1f} MFLOPs of {self.baseline!r}; "
            "--cost-multiple 0 turns it off)"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (``design.json``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CostCap | None:
        """Inverse of :meth:`to_dict`; None (a run without a cap, or from before caps) stays
        None."""
        return None if data is None else cls(**data)


def plan_cost_cap(baselines: dict[str, str], space: SearchSpace, multiple: float | None,
                  width_divisor: int) -> CostCap | None:  # fmt: skip
    """The cap for ``multiple`` times the costliest of ``baselines`` (name -> architecture) on
    ``space``'s input, counted at widths / ``width_divisor``; None when ``multiple`` is None
    or 0 (no cap)."""
    if not multiple:
        return None
    shape = {"in_channels": space.input_channels, "input_size": space.input_size}
    flops = {n: forward_flops(Architecture.parse(a).layers, **shape) for n, a in baselines.items()}
    name = max(flops, key=lambda n: flops[n])
    return CostCap(max_flops=float(multiple * flops[name]), width_divisor=width_divisor,
                   multiple=float(multiple), baseline=name, baseline_flops=flops[name])  # fmt: skip


def cost_width(preset_divisor: int, search_divisor: int) -> int:
    """The cost width a search at widths / ``search_divisor`` can use: the preset's, or the
    widest that divides the search width when the preset's does not (their gcd), so the
    search's widths map onto it."""
    return math.gcd(preset_divisor, search_divisor)


def design_flops(arch: Architecture, cap: CostCap, space: SearchSpace, divisor: int) -> int:
    """FLOPs per image of ``arch`` (found at widths / ``divisor``) before its classifier, at
    ``cap``'s cost width: what the search's mask kept within ``cap.max_flops``."""
    wide = rescale(arch, space, divisor, cap.width_divisor)
    shape = {"in_channels": space.input_channels, "input_size": space.input_size}
    return forward_flops(wide.layers[:-1], **shape)


def narrowest_divisor(arch: Architecture, cap: CostCap | None, space: SearchSpace,
                      divisor: int) -> int | None:  # fmt: skip
    """The narrowest width (a divisor) at which the final phase may train ``arch`` (found at
    widths / ``divisor``): the cost width when it fits the cap there, else None (as narrow
    as the search width)."""
    if cap is None or design_flops(arch, cap, space, divisor) > cap.max_flops:
        return None
    return cap.width_divisor
