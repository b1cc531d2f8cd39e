"""Size limits of an architecture, checked by arithmetic before any tensor is allocated.

An architecture string can ask for anything: ``[C(99999999999,3,1), SM(10)]`` wants 3.6 TB of
weights, ten thousand stacked convs want gigabytes of activations. :class:`ArchitectureLimits`
holds the four limits in one place (depth, parameters, activations, FLOPs);
:func:`check_limits` walks an architecture's traced shapes (see
:func:`metaqnn.core.nets.trace_shapes`) and raises :class:`ArchitectureLimitError`, an
:class:`~envs.layers.ArchitectureError` naming the first layer at which a running total goes
over its limit. :func:`metaqnn.core.nets.build_model` checks the limits in force
(:func:`active_limits`, the defaults unless :func:`use_limits` says otherwise) before it
builds anything; the command line sets them with ``--max-depth``, ``--max-params``,
``--max-activations`` and ``--max-flops``.

The defaults are generous: the largest network of any preset search space (18 convs of 512
5x5 filters on a 32x32 image) has about 1.2e8 parameters, 9.4e6 activations and 2.4e11 FLOPs
per image and 18 layers, well inside each limit.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Protocol

from envs.layers import Architecture, ArchitectureError, Conv, FullyConnected, Layer, Softmax
from metaqnn.errors import ConfigError


@dataclass(frozen=True)
class ArchitectureLimits:
    """The largest architecture that may be built. Totals are per image, the final ``SM``
    included; depth counts the layers before ``SM``."""

    max_depth: int = 64
    """Layers before ``SM`` (the deepest preset space allows 18)."""
    max_params: int = 500_000_000
    """Weights and biases of the conv, FC and ``SM`` layers (2 GB in float32);
    normalisation parameters are not counted."""
    max_activations: int = 100_000_000
    """Values that the layers output for one image, summed over the layers (what training
    keeps for the backward pass, 400 MB per image in float32, before the batch multiplies it)."""
    max_flops: int = 1_000_000_000_000
    """FLOPs of one forward pass of one image, counted as by
    :func:`metaqnn.core.nets.count_flops`."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"ArchitectureLimits.{f.name}={value!r} is not an integer >= 1")


#: The limits in force unless :func:`use_limits` changes them.
DEFAULT_LIMITS = ArchitectureLimits()

#: Command-line option of each limit, named in the errors.
OPTIONS = {
    "max_depth": "--max-depth",
    "max_params": "--max-params",
    "max_activations": "--max-activations",
    "max_flops": "--max-flops",
}

_ACTIVE: contextvars.ContextVar[ArchitectureLimits] = contextvars.ContextVar(
    "architecture_limits", default=DEFAULT_LIMITS
)


def active_limits() -> ArchitectureLimits:
    """The limits in force: :data:`DEFAULT_LIMITS` unless inside :func:`use_limits`."""
    return _ACTIVE.get()


@contextmanager
def use_limits(limits: ArchitectureLimits) -> Iterator[ArchitectureLimits]:
    """Put ``limits`` in force for the ``with`` block (this thread or task only; worker
    processes keep the defaults)."""
    token = _ACTIVE.set(limits)
    try:
        yield limits
    finally:
        _ACTIVE.reset(token)


class ArchitectureLimitError(ArchitectureError):
    """An architecture over a limit of :class:`ArchitectureLimits`.

    Attributes:
        limit: The field of :class:`ArchitectureLimits` that was exceeded.
        index: Index of the layer at which the total went over it.
        value: The total at that layer.
    """

    def __init__(self, message: str, limit: str, index: int, value: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.index = index
        self.value = value


class Shape(Protocol):
    """A layer's input and output shape (:class:`metaqnn.core.nets.LayerShape`)."""

    in_channels: int
    in_size: int
    out_channels: int
    out_size: int


@dataclass(frozen=True)
class ArchitectureCost:
    """What an architecture costs, per image (see :class:`ArchitectureLimits`)."""

    depth: int
    params: int
    activations: int
    flops: int


def layer_flops(layer: Layer, s: Shape) -> int:
    """FLOPs of one layer on one image: ``2 * C_in * k * k * C_out * R_out * R_out`` for a
    conv, ``2 * in_features * out_features`` for an FC or ``SM`` layer, 0 for the rest."""
    if isinstance(layer, Conv):
        return 2 * s.in_channels * layer.kernel**2 * s.out_channels * s.out_size**2
    if isinstance(layer, FullyConnected | Softmax):
        return 2 * s.in_channels * s.in_size**2 * s.out_channels
    return 0


def layer_params(layer: Layer, s: Shape) -> int:
    """Weights and biases of one layer (a conv's, an FC's or the ``SM`` classifier's)."""
    if isinstance(layer, Conv):
        return (s.in_channels * layer.kernel**2 + 1) * s.out_channels
    if isinstance(layer, FullyConnected | Softmax):
        return (s.in_channels * s.in_size**2 + 1) * s.out_channels
    return 0


def _over(limits: ArchitectureLimits, name: str, what: str, index: int, layer: Layer,
          value: int) -> ArchitectureLimitError:  # fmt: skip
    limit = getattr(limits, name)
    return ArchitectureLimitError(
        f"layer {index} {layer}: {what} {value:,}, over the limit of {limit:,} ({OPTIONS[name]})",
        name,
        index,
        value,
    )


def check_limits(
    arch: Architecture, shapes: Sequence[Shape], limits: ArchitectureLimits | None = None
) -> ArchitectureCost:
    """Check an architecture against ``limits``, layer by layer, in integer arithmetic.

    Args:
        arch: The architecture.
        shapes: The input and output shape of each of its layers.
        limits: The limits (default: :func:`active_limits`).

    Returns:
        Its depth and per-image totals.

    Raises:
        ArchitectureLimitError: Naming the first layer at which the depth or a running total
            goes over its limit, the total and the option that sets the limit.
    """
    limits = active_limits() if limits is None else limits
    depth = len(arch.hidden)
    if depth > limits.max_depth:
        index = limits.max_depth
        raise ArchitectureLimitError(
            f"layer {index} {arch.layers[index]}: the architecture has {depth:,} layers before "
            f"SM, over the depth limit of {limits.max_depth:,} ({OPTIONS['max_depth']})",
            "max_depth",
            index,
            depth,
        )
    params = activations = flops = 0
    for index, (layer, s) in enumerate(zip(arch.layers, shapes, strict=True)):
        params += layer_params(layer, s)
        activations += s.out_channels * s.out_size**2
        flops += layer_flops(layer, s)
        for name, what, value in (
            ("max_params", "the parameters reach", params),
            ("max_activations", "the activations per image reach", activations),
            ("max_flops", "the FLOPs per image reach", flops),
        ):
            if value > getattr(limits, name):
                raise _over(limits, name, what, index, layer, value)
    return ArchitectureCost(depth, params, activations, flops)
