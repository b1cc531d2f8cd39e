"""An independent statement of MetaQNN's rules over a whole layer sequence.

Written from ../shared/RESEARCH.md without using envs.space's state machine, so that tests can
check the environment's masks and transitions against it.
"""

from envs.layers import Conv, FullyConnected, GlobalAvgPool, Pool, Softmax
from envs.space import SearchSpace


def _sizes(layers, input_size):
    """Representation size before each layer (SAME convs, VALID floor-mode pools)."""
    sizes, r = [], input_size
    for layer in layers:
        sizes.append(r)
        if isinstance(layer, Conv):
            r = (r + layer.stride - 1) // layer.stride
        elif isinstance(layer, Pool):
            r = (r - layer.size) // layer.stride + 1
        elif isinstance(layer, FullyConnected | GlobalAvgPool):
            r = 1
    return sizes


def reference_violations(layers, space: SearchSpace) -> set[str]:
    """Every rule a (possibly unfinished) layer sequence breaks."""
    broken = set()
    sizes = _sizes(layers, space.input_size)
    body = [layer for layer in layers if not isinstance(layer, Softmax)]
    if len(body) > space.max_depth:
        broken.add("depth-limit")
    for i, layer in enumerate(layers):
        prev = layers[i - 1] if i > 0 else None
        r = sizes[i]
        if isinstance(layer, Softmax) and i != len(layers) - 1:
            broken.add("softmax-not-last")
        if isinstance(layer, Softmax) and layer.classes != space.num_classes:
            broken.add("in-space")
        if isinstance(layer, Conv) and (
            layer.filters not in space.conv_filters
            or layer.kernel not in space.conv_kernels
            or layer.stride not in space.conv_strides
        ):
            broken.add("in-space")
        if isinstance(layer, Pool) and (layer.size, layer.stride) not in space.pools:
            broken.add("in-space")
        if isinstance(layer, FullyConnected) and layer.width not in space.fc_widths:
            broken.add("in-space")
        if isinstance(layer, GlobalAvgPool) and not space.allow_gap:
            broken.add("in-space")
        if isinstance(layer, Pool) and i == 0:
            broken.add("no-pool-first")
        if isinstance(layer, Pool) and isinstance(prev, Pool):
            broken.add("no-pool-after-pool")
        if isinstance(layer, Conv) and layer.kernel >= r:
            broken.add("kernel-smaller-than-size")
        if isinstance(layer, Pool) and layer.size > r:
            broken.add("pool-fits-size")
        if isinstance(layer, FullyConnected) and r > space.fc_max_size:
            broken.add("fc-needs-small-size")
        if isinstance(prev, FullyConnected) and not isinstance(layer, FullyConnected | Softmax):
            broken.add("after-fc-only-fc-or-terminate")
        if isinstance(prev, GlobalAvgPool) and not isinstance(layer, Softmax):
            broken.add("after-gap-only-terminate")
        if (
            isinstance(layer, FullyConnected)
            and isinstance(prev, FullyConnected)
            and layer.width > prev.width
        ):
            broken.add("fc-not-wider")
    run = 0
    for layer in layers:
        run = run + 1 if isinstance(layer, FullyConnected) else 0
        if run > space.max_fc:
            broken.add("max-consecutive-fc")
    return broken
