"""Widths of an architecture, torch-free: an architecture found in a width-scaled search space
back at another width (:func:`rescale`, :func:`full_width`), its forward FLOPs counted layer by
layer (:func:`layer_step`, :func:`forward_flops`; the same integers as
:func:`metaqnn.core.nets.count_flops`), and the widest scaling that fits a FLOPs cap
(:func:`widest_fitting`).

A space ``space.scale_widths(d)`` divides every conv filter count and FC width by ``d`` (at
least 1 each). An architecture found there has the shapes of one in ``space.scale_widths(to)``
for any other ``to``: the same layers with each width mapped through the full space's widths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from envs.layers import Architecture, Conv, FullyConnected, Layer, Softmax
from envs.space import SearchSpace, output_size
from metaqnn.core.limits import layer_flops
from metaqnn.core.shapes import LayerShape
from metaqnn.errors import ConfigError

#: Conv filters and FC widths at one scaling -> those at another.
WidthMaps = tuple[dict[int, int], dict[int, int]]


def width_maps(space: SearchSpace, divisor: int, to: int = 1) -> WidthMaps:
    """The filter and FC-width maps from ``space.scale_widths(divisor)`` to
    ``space.scale_widths(to)`` (``space`` at full width)."""
    filters = {max(1, f // divisor): max(1, f // to) for f in space.conv_filters}
    widths = {max(1, w // divisor): max(1, w // to) for w in space.fc_widths}
    return filters, widths


def rescale_layer(layer: Layer, maps: WidthMaps, *, where: str = "", divisor: int = 1,
                  space_name: str = "") -> Layer:  # fmt: skip
    """``layer`` with its width mapped through ``maps`` (:func:`width_maps`); other layers
    unchanged.

    Raises:
        ConfigError: If its width is not one of the scaled space's (naming ``where``, the
            space and ``divisor``).
    """
    filters, widths = maps
    if isinstance(layer, Conv):
        if layer.filters not in filters:
            raise ConfigError(f"{layer}{where}: {layer.filters} filters is not a width of the "
                              f"{space_name} space divided by {divisor}")  # fmt: skip
        return dataclasses.replace(layer, filters=filters[layer.filters])
    if isinstance(layer, FullyConnected):
        if layer.width not in widths:
            raise ConfigError(f"{layer}{where}: width {layer.width} is not a width of the "
                              f"{space_name} space divided by {divisor}")  # fmt: skip
        return dataclasses.replace(layer, width=widths[layer.width])
    return layer


def rescale(arch: Architecture, space: SearchSpace, divisor: int, to: int = 1) -> Architecture:
    """``arch``, found in ``space.scale_widths(divisor)``, at the widths of
    ``space.scale_widths(to)`` (``to=1``: the full space's widths).

    Raises:
        ConfigError: If a width of ``arch`` is not one of the scaled space's.
    """
    if divisor == to:
        return arch
    maps = width_maps(space, divisor, to)
    named = {"where": f" in {arch}", "divisor": divisor, "space_name": space.name}
    return Architecture(tuple(rescale_layer(layer, maps, **named) for layer in arch.layers))


def full_width(arch: Architecture, space: SearchSpace, divisor: int) -> Architecture:
    """``arch``, found in ``space.scale_widths(divisor)``, with the full space's widths back."""
    return rescale(arch, space, divisor, 1)


def layer_step(layer: Layer, channels: int, size: int) -> tuple[int, int, int]:
    """One layer on a ``channels x size x size`` input (a flat vector of width W: W channels
    of size 1): its FLOPs per image (:func:`~metaqnn.core.limits.layer_flops`) and its output
    channels and size, as :func:`~metaqnn.core.shapes.trace_shapes` works them out.

    The layer is not checked against its input (a kernel larger than the representation, a
    conv after an FC); :func:`~metaqnn.core.shapes.trace_shapes` does that.
    """
    if isinstance(layer, FullyConnected):
        out_c, out_r = layer.width, 1
    elif isinstance(layer, Softmax):
        out_c, out_r = layer.classes, 1
    else:
        out_c, out_r = getattr(layer, "filters", channels), output_size(layer, size)
    flat = isinstance(layer, FullyConnected | Softmax)
    shape = LayerShape(channels, size, out_c, out_r, flat)
    return layer_flops(layer, shape), out_c, out_r


def forward_flops(layers: Iterable[Layer], *, in_channels: int, input_size: int) -> int:
    """FLOPs of one forward pass of one image through ``layers`` (an architecture's, or the
    first layers of one): the sum of :func:`layer_step`'s FLOPs, equal to
    :func:`metaqnn.core.nets.count_flops` for a whole architecture."""
    total, c, r = 0, in_channels, input_size
    for layer in layers:
        flops, c, r = layer_step(layer, c, r)
        total += flops
    return total


def widest_fitting(arch: Architecture, space: SearchSpace, divisor: int, max_flops: float, *,
                   in_channels: int, input_size: int,
                   narrowest: int | None = None) -> tuple[Architecture, int]:  # fmt: skip
    """The widest version of ``arch`` (found at widths / ``divisor``) whose forward pass costs
    at most ``max_flops``: full width, else widths / 2, / 4, ... and at the narrowest
    widths / ``narrowest`` (default: the search width, ``divisor``), whatever it costs.
    Returns it with its width divisor.
    """
    floor = divisor if narrowest is None else min(narrowest, divisor)
    to = 1
    while True:
        wide = rescale(arch, space, divisor, to)
        flops = forward_flops(wide.layers, in_channels=in_channels, input_size=input_size)
        if to >= floor or flops <= max_flops:
            return wide, to
        to = min(2 * to, floor)
