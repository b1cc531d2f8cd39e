"""Pictures of an architecture, for ``render_mode="rgb_array"`` (numpy only).

The picture is one coloured block per layer, left to right, on a white background:

* colour: the layer type (:data:`LAYER_COLOURS`);
* height: the spatial representation size ``R`` after the layer, on a log scale (the input
  size fills the picture, ``R = 1`` is a thin block), so pools and strided convs shrink it;
* width: the channels, relative to the largest choice of the space (conv filters, FC width);
  pools and GAP keep a fixed width.

A bar across the top tells the episode's status (:data:`STATUS_COLOURS`): grey while building,
green once finished, red after an illegal action. Every picture of a space has the same shape
(:func:`frame_shape`, both sides multiples of 16), as video encoders want.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from envs.layers import Conv, FullyConnected, Layer, layer_kind
from envs.space import SearchSpace, output_size

#: Pixels per layer slot (horizontally).
SLOT = 16
#: Height of the whole picture, in pixels.
HEIGHT = 96
#: Height of the status bar at the top, in pixels.
STATUS_BAR = 8
#: Smallest block height and width, in pixels.
MIN_BLOCK = 4

#: Layer type (see :func:`envs.layers.layer_kind`) -> RGB colour of its block.
LAYER_COLOURS: dict[str, tuple[int, int, int]] = {
    "conv": (66, 133, 244),
    "pool": (234, 67, 53),
    "fc": (52, 168, 83),
    "gap": (171, 71, 188),
    "softmax": (60, 60, 60),
}

#: Episode status -> RGB colour of the status bar.
STATUS_COLOURS: dict[str, tuple[int, int, int]] = {
    "building": (200, 200, 200),
    "finished": (52, 168, 83),
    "illegal": (234, 67, 53),
}

_BACKGROUND = (255, 255, 255)
_SPINE = (220, 220, 220)


def frame_shape(space: SearchSpace) -> tuple[int, int, int]:
    """``(height, width, 3)`` of every picture of an architecture in ``space``: one slot per
    layer up to ``max_depth`` plus the softmax, and half a slot of margin on either side."""
    return HEIGHT, SLOT * (space.max_depth + 2), 3


def _block_height(size: int, input_size: int, room: int) -> int:
    if input_size <= 1:
        return room
    fraction = math.log2(max(size, 1)) / math.log2(input_size)
    return round(MIN_BLOCK + (room - MIN_BLOCK) * min(max(fraction, 0.0), 1.0))


def _block_width(space: SearchSpace, layer: Layer) -> int:
    room = SLOT - 2
    if isinstance(layer, Conv):
        fraction = layer.filters / max(space.conv_filters)
    elif isinstance(layer, FullyConnected):
        fraction = layer.width / max(space.fc_widths)
    else:
        return room // 2
    return round(MIN_BLOCK + (room - MIN_BLOCK) * fraction)


def draw_architecture(
    space: SearchSpace, layers: Sequence[Layer], status: str = "building"
) -> np.ndarray:
    """The picture of ``layers`` (the architecture so far) in ``space``.

    Args:
        space: The search space (sets the picture's width and the scales).
        layers: The layers in order; a trailing ``SM`` is drawn as a block too.
        status: ``"building"``, ``"finished"`` or ``"illegal"`` (the status bar's colour).

    Returns:
        A ``uint8`` array of shape :func:`frame_shape` ``(space)``.

    Raises:
        ValueError: If ``status`` is unknown.
    """
    if status not in STATUS_COLOURS:
        raise ValueError(f"status {status!r} is not one of {sorted(STATUS_COLOURS)}")
    height, width, _ = frame_shape(space)
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[:] = _BACKGROUND
    frame[:STATUS_BAR] = STATUS_COLOURS[status]
    room = height - STATUS_BAR - 4
    middle = STATUS_BAR + 2 + room // 2
    left = SLOT // 2
    frame[middle, left : width - left] = _SPINE
    size = space.input_size
    for i, layer in enumerate(layers[: space.max_depth + 1]):
        size = output_size(layer, size)
        block_h = _block_height(size, space.input_size, room)
        block_w = _block_width(space, layer)
        x0 = left + i * SLOT + (SLOT - block_w) // 2
        y0 = middle - block_h // 2
        frame[y0 : y0 + block_h, x0 : x0 + block_w] = LAYER_COLOURS[layer_kind(layer)]
    return frame
