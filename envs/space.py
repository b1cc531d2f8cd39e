"""The MetaQNN search space: layer choices, representation sizes, and the transition rules.

A :class:`SearchSpace` is a frozen configuration (every limit is a field) plus the logic that
says, from a :class:`State`, which layers may come next. The rules are MetaQNN's (Baker et al.
2017), each named in :data:`RULES` so that a rejected architecture says which rule it broke:

* from any non-terminal state the agent may terminate (append ``SM(classes)``);
* depth ``d`` goes only to ``d + 1``; at the depth limit only termination is allowed;
* no pool as the first layer, no pool after a pool;
* a conv kernel must be smaller than the current representation size, a pool window no larger;
* FC only when the representation size is at most ``fc_max_size`` (the smallest bin);
* after FC only FC or terminate; at most ``max_fc`` consecutive FC layers, each no wider than
  the one before;
* after GAP only terminate;
* every layer's parameters come from the space's choices, and ``SM`` has the space's classes.

Representation sizes follow PyTorch: a SAME conv of stride ``s`` maps ``R`` to ``ceil(R / s)``,
a ``P(f, s)`` pool (VALID, floor mode) to ``floor((R - f) / s) + 1``, GAP to 1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from envs.layers import (
    Architecture,
    ArchitectureError,
    Conv,
    FullyConnected,
    GlobalAvgPool,
    Layer,
    Pool,
    Softmax,
    layer_kind,
)


class RuleViolation(ArchitectureError):
    """An architecture that breaks a rule of the search space.

    Attributes:
        rule: The name of the broken rule (a key of :data:`RULES`).
        index: Index of the offending layer in the architecture.
    """

    def __init__(self, message: str, rule: str, index: int) -> None:
        super().__init__(message)
        self.rule = rule
        self.index = index


@dataclass(frozen=True)
class State:
    """A MetaQNN state: the last layer added and what the rules need to know about the net.

    Attributes:
        layer: The last layer added; ``None`` for the start state, a ``Softmax`` when terminal.
        depth: Number of layers added so far, not counting ``SM``.
        size: Current spatial representation size ``R`` (height = width).
        fc_count: Number of consecutive FC layers at the end of the net.
    """

    layer: Layer | None
    depth: int
    size: int
    fc_count: int = 0

    @property
    def kind(self) -> str:
        """``start``, ``conv``, ``pool``, ``fc``, ``gap`` or ``softmax`` (terminal)."""
        return layer_kind(self.layer)

    @property
    def terminal(self) -> bool:
        """Whether the architecture is finished."""
        return isinstance(self.layer, Softmax)


def _positive_tuple(name: str, values: tuple, width: int | None = None) -> None:
    if not isinstance(values, tuple) or not values:
        raise ValueError(f"SearchSpace.{name} must be a non-empty tuple, got {values!r}")
    for v in values:
        items = v if width is not None else (v,)
        if width is not None and (not isinstance(v, tuple) or len(v) != width):
            raise ValueError(f"SearchSpace.{name} entries must be {width}-tuples, got {v!r}")
        if any(not isinstance(x, int) or x <= 0 for x in items):
            raise ValueError(f"SearchSpace.{name} must hold positive integers, got {v!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"SearchSpace.{name} has duplicates: {values!r}")


@dataclass(frozen=True)
class SearchSpace:
    """A MetaQNN search space. Every limit is configurable; see :data:`PRESETS`.

    Attributes:
        name: A label for tables and logs.
        input_size: Spatial size of the input images (height = width).
        input_channels: Channels of the input images.
        num_classes: Classes of the final ``SM`` layer.
        max_depth: Maximum number of layers before ``SM`` (MetaQNN: 12 MNIST/SVHN, 18 CIFAR-10).
        conv_filters: Filter counts a conv may have.
        conv_kernels: Kernel sizes a conv may have.
        conv_strides: Strides a conv may have (MetaQNN: 1 only).
        pools: ``(size, stride)`` pairs a pool may have.
        fc_widths: Widths an FC layer may have.
        max_fc: Maximum number of consecutive FC layers.
        size_bins: Thresholds of the representation-size bins, descending: ``(8, 4)`` gives the
            bins ``R > 8``, ``4 < R <= 8`` and ``R <= 4``.
        fc_max_size: FC layers are allowed only when ``R <= fc_max_size``.
        allow_gap: Whether global average pooling is in the space.
    """

    name: str = "custom"
    input_size: int = 28
    input_channels: int = 1
    num_classes: int = 10
    max_depth: int = 12
    conv_filters: tuple[int, ...] = (64, 128, 256, 512)
    conv_kernels: tuple[int, ...] = (1, 3, 5)
    conv_strides: tuple[int, ...] = (1,)
    pools: tuple[tuple[int, int], ...] = ((5, 3), (3, 2), (2, 2))
    fc_widths: tuple[int, ...] = (512, 256, 128)
    max_fc: int = 2
    size_bins: tuple[int, ...] = (8, 4)
    fc_max_size: int = 4
    allow_gap: bool = True

    def __post_init__(self) -> None:
        for name in ("input_size", "input_channels", "num_classes", "max_depth", "fc_max_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"SearchSpace.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.max_fc, int) or self.max_fc < 0:
            raise ValueError(
                f"SearchSpace.max_fc must be a non-negative integer, got {self.max_fc!r}"
            )
        for name in ("conv_filters", "conv_kernels", "conv_strides", "pools", "fc_widths"):
            _positive_tuple(name, getattr(self, name), width=2 if name == "pools" else None)
        if self.size_bins and list(self.size_bins) != sorted(set(self.size_bins), reverse=True):
            raise ValueError(
                f"SearchSpace.size_bins must be strictly descending, got {self.size_bins!r}"
            )

    # ----------------------------------------------------------------- actions
    @property
    def actions(self) -> tuple[Layer, ...]:
        """Every layer choice in action-index order: convs, pools, FCs, GAP, then ``SM``."""
        return _actions(self)

    @property
    def terminate_action(self) -> int:
        """Index of the terminate action (``SM(num_classes)``): always the last."""
        return len(self.actions) - 1

    def action_index(self, layer: Layer) -> int:
        """The action index of a layer choice.

        Raises:
            RuleViolation: If the layer is not a choice of this space (rule ``in-space``).
        """
        index = _action_indices(self).get(layer)
        if index is None:
            raise RuleViolation(
                f"{layer} is not in search space {self.name!r}: {self._choices(layer)}",
                "in-space",
                -1,
            )
        return index

    def _choices(self, layer: Layer) -> str:
        choices = {
            Conv: f"conv filters {self.conv_filters}, kernels {self.conv_kernels}, "
            f"strides {self.conv_strides}",
            Pool: f"pools (size, stride) {self.pools}",
            FullyConnected: f"FC widths {self.fc_widths}",
            GlobalAvgPool: "GAP is disabled (allow_gap=False)",
            Softmax: f"the space has {self.num_classes} classes",
        }
        return choices[type(layer)]

    # ------------------------------------------------------------ transitions
    def start(self) -> State:
        """The start state: the empty network on the input."""
        return State(layer=None, depth=0, size=self.input_size, fc_count=0)

    def size_bin(self, size: int) -> int:
        """Index of the representation-size bin of ``size`` (0 = largest sizes)."""
        return sum(size <= threshold for threshold in self.size_bins)

    @property
    def num_size_bins(self) -> int:
        """Number of representation-size bins."""
        return len(self.size_bins) + 1

    def violations(self, state: State, layer: Layer) -> list[str]:
        """Names of the rules that appending ``layer`` in ``state`` would break (empty: allowed)."""
        if state.terminal:
            return ["terminal"]
        if _action_indices(self).get(layer) is None:
            return ["in-space"]
        return [name for name, rule in RULES.items() if not rule.check(self, state, layer)]

    def allowed(self, state: State, layer: Layer) -> bool:
        """Whether ``layer`` may follow ``state``."""
        return not self.violations(state, layer)

    def action_mask(self, state: State) -> np.ndarray:
        """Boolean mask over :attr:`actions`: True where the action is allowed in ``state``."""
        return np.array([self.allowed(state, layer) for layer in self.actions], dtype=bool)

    def next_state(self, state: State, layer: Layer) -> State:
        """The state after appending ``layer`` (no rule check: see :meth:`violations`)."""
        if isinstance(layer, Softmax):
            return State(layer=layer, depth=state.depth, size=state.size, fc_count=state.fc_count)
        fc_count = state.fc_count + 1 if isinstance(layer, FullyConnected) else 0
        return State(
            layer=layer,
            depth=state.depth + 1,
            size=output_size(layer, state.size),
            fc_count=fc_count,
        )

    def states(self, architecture: Architecture) -> Iterator[State]:
        """The states an architecture passes through, start and terminal included."""
        state = self.start()
        yield state
        for layer in architecture.layers:
            state = self.next_state(state, layer)
            yield state

    def validate(self, architecture: Architecture | str) -> Architecture:
        """Check an architecture against every rule of the space.

        Args:
            architecture: An :class:`Architecture` or its string form.

        Returns:
            The architecture (parsed, if a string was given).

        Raises:
            ArchitectureParseError: For a malformed string.
            RuleViolation: Naming the first broken rule, the layer and its index.
        """
        arch = Architecture.parse(architecture) if isinstance(architecture, str) else architecture
        state = self.start()
        for index, layer in enumerate(arch.layers):
            broken = self.violations(state, layer)
            if broken:
                rule = broken[0]
                description = (
                    self._choices(layer) if rule == "in-space" else RULES[rule].description
                )
                raise RuleViolation(
                    f"{arch}: layer {index} {layer} breaks rule {rule!r} ({description})",
                    rule,
                    index,
                )
            state = self.next_state(state, layer)
        return arch

    def is_valid(self, architecture: Architecture) -> bool:
        """Whether an architecture obeys every rule (no exception)."""
        try:
            self.validate(architecture)
        except RuleViolation:
            return False
        return True

    def sample(self, rng: np.random.Generator) -> Architecture:
        """A random valid architecture: a walk that picks uniformly among allowed actions."""
        state, layers = self.start(), []
        while not state.terminal:
            allowed = np.flatnonzero(self.action_mask(state))
            layer = self.actions[int(rng.choice(allowed))]
            layers.append(layer)
            state = self.next_state(state, layer)
        return Architecture(tuple(layers))

    def replace(self, **changes: object) -> SearchSpace:
        """A copy with some fields changed (validated like any new space)."""
        return dataclasses.replace(self, **changes)

    def scale_widths(self, divisor: int) -> SearchSpace:
        """A copy whose conv filter counts and FC widths are divided by ``divisor`` (at least
        1 each, duplicates merged): the same shapes of network, cheaper to train on a CPU."""
        if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 1:
            raise ValueError(f"width divisor must be a positive integer, got {divisor!r}")
        if divisor == 1:
            return self
        return self.replace(
            conv_filters=tuple(sorted({max(1, f // divisor) for f in self.conv_filters})),
            fc_widths=tuple(sorted({max(1, w // divisor) for w in self.fc_widths}, reverse=True)),
        )


def output_size(layer: Layer, size: int) -> int:
    """Spatial size after ``layer`` on an input of spatial size ``size``."""
    if isinstance(layer, Conv):
        return -(-size // layer.stride)
    if isinstance(layer, Pool):
        return (size - layer.size) // layer.stride + 1
    if isinstance(layer, GlobalAvgPool | FullyConnected):
        return 1
    return size


# Actions are cached per space: spaces are frozen and hashable.
_ACTION_CACHE: dict[SearchSpace, tuple[Layer, ...]] = {}
_INDEX_CACHE: dict[SearchSpace, dict[Layer, int]] = {}


def _actions(space: SearchSpace) -> tuple[Layer, ...]:
    actions = _ACTION_CACHE.get(space)
    if actions is None:
        convs = [
            Conv(f, k, s)
            for f in space.conv_filters
            for k in space.conv_kernels
            for s in space.conv_strides
        ]
        pools = [Pool(f, s) for f, s in space.pools]
        fcs = [FullyConnected(w) for w in space.fc_widths]
        gap = [GlobalAvgPool()] if space.allow_gap else []
        actions = (*convs, *pools, *fcs, *gap, Softmax(space.num_classes))
        _ACTION_CACHE[space] = actions
    return actions


def _action_indices(space: SearchSpace) -> dict[Layer, int]:
    indices = _INDEX_CACHE.get(space)
    if indices is None:
        indices = {layer: i for i, layer in enumerate(_actions(space))}
        _INDEX_CACHE[space] = indices
    return indices


@dataclass(frozen=True)
class Rule:
    """A named MetaQNN rule: ``check(space, state, layer)`` is True when the step is allowed."""

    description: str
    check: Callable[[SearchSpace, State, Layer], bool]


def _not_terminate(layer: Layer) -> bool:
    return not isinstance(layer, Softmax)


#: The rules, by name, sequence rules before size rules (the first broken one is reported).
#: Terminating (``SM``) is allowed from every non-terminal state.
RULES: dict[str, Rule] = {
    "depth-limit": Rule(
        "at the depth limit only termination is allowed",
        lambda sp, st, ly: not _not_terminate(ly) or st.depth < sp.max_depth,
    ),
    "no-pool-first": Rule(
        "a pool cannot be the first layer",
        lambda sp, st, ly: not (isinstance(ly, Pool) and st.layer is None),
    ),
    "no-pool-after-pool": Rule(
        "a pool cannot follow a pool",
        lambda sp, st, ly: not (isinstance(ly, Pool) and isinstance(st.layer, Pool)),
    ),
    "after-fc-only-fc-or-terminate": Rule(
        "after an FC layer only FC or termination",
        lambda sp, st, ly: (
            not isinstance(st.layer, FullyConnected) or isinstance(ly, FullyConnected | Softmax)
        ),
    ),
    "max-consecutive-fc": Rule(
        "at most max_fc consecutive FC layers",
        lambda sp, st, ly: not isinstance(ly, FullyConnected) or st.fc_count < sp.max_fc,
    ),
    "fc-not-wider": Rule(
        "an FC layer cannot be wider than the FC before it",
        lambda sp, st, ly: (
            not (
                isinstance(ly, FullyConnected)
                and isinstance(st.layer, FullyConnected)
                and ly.width > st.layer.width
            )
        ),
    ),
    "after-gap-only-terminate": Rule(
        "after GAP only termination",
        lambda sp, st, ly: not isinstance(st.layer, GlobalAvgPool) or isinstance(ly, Softmax),
    ),
    "kernel-smaller-than-size": Rule(
        "a conv kernel must be smaller than the representation size",
        lambda sp, st, ly: not isinstance(ly, Conv) or ly.kernel < st.size,
    ),
    "pool-fits-size": Rule(
        "a pool window cannot be larger than the representation size",
        lambda sp, st, ly: not isinstance(ly, Pool) or ly.size <= st.size,
    ),
    "fc-needs-small-size": Rule(
        "FC only when the representation size is at most fc_max_size",
        lambda sp, st, ly: not isinstance(ly, FullyConnected) or st.size <= sp.fc_max_size,
    ),
}


#: Search-space presets per dataset, from the MetaQNN paper; ``digits`` is a small space for
#: scikit-learn's 8x8 digits (the embedded default dataset).
PRESETS: dict[str, SearchSpace] = {
    "mnist": SearchSpace(name="mnist", input_size=28, input_channels=1, max_depth=12),
    "cifar10": SearchSpace(name="cifar10", input_size=32, input_channels=3, max_depth=18),
    "digits": SearchSpace(
        name="digits",
        input_size=8,
        input_channels=1,
        max_depth=6,
        conv_filters=(16, 32, 64),
        conv_kernels=(1, 3, 5),
        pools=((3, 2), (2, 2)),
        fc_widths=(128, 64),
        size_bins=(4, 2),
        fc_max_size=4,
    ),
}
PRESETS["fashion-mnist"] = PRESETS["mnist"].replace(name="fashion-mnist")
PRESETS["svhn"] = PRESETS["cifar10"].replace(name="svhn", max_depth=12)
PRESETS["cifar100"] = PRESETS["cifar10"].replace(name="cifar100", num_classes=100)
#: MNIST's grammar with FC on maps of up to 14x14 (MetaQNN: 4x4), where the design job's hand
#: nets have theirs; 14 is a size-bin threshold, so the state still tells where FC is allowed.
_FC14 = {"size_bins": (14, 8, 4), "fc_max_size": 14}
PRESETS["mnist-fc14"] = PRESETS["mnist"].replace(name="mnist-fc14", **_FC14)
PRESETS["fashion-mnist-fc14"] = PRESETS["mnist-fc14"].replace(name="fashion-mnist-fc14")
#: The tabular benchmark's space (``metaqnn bench``): the MNIST grammar at depth 4 with narrow
#: convs, two kernels and two FC widths; 1,362 architectures, every one trained.
PRESETS["mnist-bench"] = PRESETS["mnist"].replace(
    name="mnist-bench", max_depth=4, conv_filters=(8, 16), conv_kernels=(3, 5), fc_widths=(64, 32)
)


def get_space(name: str, **overrides: object) -> SearchSpace:
    """A preset search space by name, with optional field overrides.

    Raises:
        ValueError: If the preset is unknown; the message lists the presets.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown search-space preset {name!r}; choose from {sorted(PRESETS)}")
    space = PRESETS[name]
    return space.replace(**overrides) if overrides else space
