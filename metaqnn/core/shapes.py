"""Shapes and sizes of an architecture's layers, worked out arithmetically (no torch), so
that lightweight commands such as ``metaqnn validate`` answer without importing it."""

from __future__ import annotations

from dataclasses import dataclass

from envs.layers import Architecture, ArchitectureError, Conv, FullyConnected, Layer, Pool, Softmax
from envs.space import output_size
from metaqnn.errors import ConfigError


@dataclass(frozen=True)
class LayerShape:
    """Channels and spatial size of a layer's input and output; a flat vector of width W
    counts as W channels of size 1, and ``flat`` says whether the output is one (after FC)."""

    in_channels: int
    in_size: int
    out_channels: int
    out_size: int
    flat: bool


def _out_shape(layer: Layer, c: int, r: int, flat: bool) -> tuple[int, int, bool]:
    """(channels, size, flat) after ``layer``; a ValueError says why it cannot be built."""
    if isinstance(layer, FullyConnected):
        return layer.width, 1, True
    if isinstance(layer, Softmax):
        return layer.classes, 1, True
    if flat:
        raise ValueError("needs a spatial input but follows an FC layer")
    if isinstance(layer, Conv) and layer.kernel > r:
        raise ValueError(f"kernel {layer.kernel} is larger than the {r}x{r} representation")
    if isinstance(layer, Pool) and layer.size > r:
        raise ValueError(f"window {layer.size} is larger than the {r}x{r} representation")
    return getattr(layer, "filters", c), output_size(layer, r), False


def trace_shapes(arch: Architecture, *, in_channels: int, input_size: int) -> list[LayerShape]:
    """The input and output shape of every layer of ``arch`` (``SM`` included).

    Args:
        arch: The architecture.
        in_channels: Channels of the input images.
        input_size: Spatial size of the (square) input images.

    Returns:
        One :class:`LayerShape` per layer, in order.

    Raises:
        ConfigError: If ``in_channels`` or ``input_size`` is not a positive integer.
        ArchitectureError: If a layer cannot be built on its input, naming the layer, its
            index and the size.
    """
    for name, value in (("in_channels", in_channels), ("input_size", input_size)):
        if not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    c, r, flat = in_channels, input_size, False
    shapes = []
    for index, layer in enumerate(arch.layers):
        try:
            out_c, out_r, out_flat = _out_shape(layer, c, r, flat)
        except ValueError as exc:
            raise ArchitectureError(
                f"cannot build {arch} on a {in_channels}x{input_size}x{input_size} input: "
                f"layer {index} {layer}: {exc}"
            ) from None
        shapes.append(LayerShape(c, r, out_c, out_r, out_flat))
        c, r, flat = out_c, out_r, out_flat
    return shapes
