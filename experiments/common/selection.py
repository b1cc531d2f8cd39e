"""Architectures chosen for spread: a pool of distinct draws of a space's cost-masked sampler,
cut into depth x FLOPs quantile strata, drawn from in turn (issue 18's design-fidelity run)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.cnn_design import CNNDesignEnv, zero_reward
from envs.layers import Architecture, Softmax
from envs.space import get_space
from metaqnn.core.widths import forward_flops, rescale
from metaqnn.design.cost import CostCap
from metaqnn.errors import ConfigError


@dataclass(frozen=True)
class Selection:
    """The chosen architectures and how they spread."""

    archs: list[Architecture]
    """At the search width."""
    depths: list[int]
    """Layers before the classifier."""
    final_flops: list[int]
    """Forward FLOPs per image at the final width."""
    strata: list[tuple[int, int]]
    """(depth bin, FLOPs bin) of each."""
    pool: int
    """Distinct architectures the strata were cut from."""
    order: list[int]
    """Indices into ``archs`` in the order they were drawn (one per stratum per round): any
    prefix is spread over the strata, so the truth is measured in this order."""


def quantile_bins(values: Sequence[float], bins: int) -> list[int]:
    """Each value's quantile bin, ``0 .. bins - 1``, by the midpoint of its rank among
    ``values``: equal values share a bin."""
    v = np.asarray(values, dtype=float)
    ordered = np.sort(v)
    below = np.searchsorted(ordered, v, side="left")
    equal = np.searchsorted(ordered, v, side="right") - below
    mid = (below + equal / 2) / len(v)
    return np.minimum(bins - 1, np.floor(mid * bins)).astype(int).tolist()


def select_architectures(config: Any, cap: CostCap | None) -> Selection:
    """``config.architectures`` distinct architectures of the dataset's space at the search
    width, within ``cap`` (None: no cap), spread over depth and FLOPs.

    A pool of ``pool_size`` distinct architectures is drawn by the cost-masked sampler (the
    search's random walk: uniform among the allowed layers) and cut into depth x FLOPs
    quantile strata; rounds visit the non-empty strata in a seeded order, each taking one of
    its architectures at random, until enough are chosen. Deterministic given ``arch_seed``.

    ``config`` has the fields of :class:`experiments.design_fidelity.Config` that say so:
    ``dataset``, ``width_divisor``, ``final_width_divisor``, ``architectures``, ``arch_seed``,
    ``pool_size``, ``depth_strata`` and ``flops_strata``.

    Raises:
        ConfigError: If the space holds fewer distinct architectures than wanted.
    """
    full = get_space(config.dataset)
    env: Any = CNNDesignEnv(full.scale_widths(config.width_divisor), reward_fn=zero_reward)
    if cap is not None:
        from metaqnn.search.cost import CostMask

        env = CostMask(env, cap.max_flops, space=full, search_divisor=config.width_divisor,
                       cost_divisor=cap.width_divisor)  # fmt: skip
    from metaqnn.search.cost import sample

    rng = np.random.default_rng(config.arch_seed)
    pool: dict[str, Architecture] = {}
    for _ in range(20 * config.pool_size):
        arch = sample(env, rng)
        pool.setdefault(str(arch), arch)
        if len(pool) == config.pool_size:
            break
    archs = list(pool.values())
    if len(archs) < config.architectures:
        raise ConfigError(f"architectures={config.architectures}: the {config.dataset} space "
                          f"gave only {len(archs)} distinct ones within the cap")  # fmt: skip
    shape = {"in_channels": full.input_channels, "input_size": full.input_size}
    depths = [sum(not isinstance(ly, Softmax) for ly in a.layers) for a in archs]
    wide = [rescale(a, full, config.width_divisor, config.final_width_divisor) for a in archs]
    flops = [forward_flops(a.layers, **shape) for a in wide]
    keys = list(zip(quantile_bins(depths, config.depth_strata),
                    quantile_bins(flops, config.flops_strata), strict=True))  # fmt: skip
    members: dict[tuple[int, int], list[int]] = {}
    for i in rng.permutation(len(archs)).tolist():
        members.setdefault(keys[i], []).append(i)
    order = sorted(members)
    picked: list[int] = []
    while len(picked) < config.architectures:
        for j in rng.permutation(len(order)).tolist():
            if members[order[j]] and len(picked) < config.architectures:
                picked.append(members[order[j]].pop())
    drawn = list(picked)
    picked.sort(key=lambda i: (depths[i], flops[i], str(archs[i])))
    return Selection([archs[i] for i in picked], [depths[i] for i in picked],
                     [flops[i] for i in picked], [keys[i] for i in picked], len(archs),
                     [picked.index(i) for i in drawn])  # fmt: skip
