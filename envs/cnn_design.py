"""The Gymnasium environment: build a CNN layer by layer in a MetaQNN search space."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.layers import (
    Architecture,
    Conv,
    FullyConnected,
    Layer,
    Pool,
)
from envs.space import SearchSpace, State, get_space

#: A reward: the finished architecture -> a float (for example validation accuracy).
RewardFn = Callable[[Architecture], float]

#: Layer-type codes of the observation's first field.
LAYER_TYPE_CODES: dict[str, int] = {
    "start": 0,
    "conv": 1,
    "pool": 2,
    "fc": 3,
    "gap": 4,
    "softmax": 5,
}

#: Names of the observation fields, in order.
OBSERVATION_FIELDS: tuple[str, ...] = (
    "layer_type",
    "depth",
    "conv_filters",
    "conv_kernel",
    "conv_stride",
    "pool",
    "fc_width",
    "size",
    "size_bin",
    "fc_count",
)


def observation_space(space: SearchSpace) -> spaces.MultiDiscrete:
    """The observation space of an environment over ``space`` (see :func:`encode_state`)."""
    return spaces.MultiDiscrete(
        [
            len(LAYER_TYPE_CODES),
            space.max_depth + 1,
            len(space.conv_filters) + 1,
            len(space.conv_kernels) + 1,
            len(space.conv_strides) + 1,
            len(space.pools) + 1,
            len(space.fc_widths) + 1,
            space.input_size + 1,
            space.num_size_bins,
            space.max_fc + 1,
        ],
        dtype=np.int64,
    )


def encode_state(space: SearchSpace, state: State) -> np.ndarray:
    """Encode a :class:`State` as the fixed-size observation vector.

    Field ``i`` is ``OBSERVATION_FIELDS[i]``. Choice fields hold ``1 + index`` of the value in
    the space's tuple of choices, or 0 when the current layer has no such parameter.
    """
    layer = state.layer
    conv = layer if isinstance(layer, Conv) else None
    pool = layer if isinstance(layer, Pool) else None
    fc = layer if isinstance(layer, FullyConnected) else None
    return np.array(
        [
            LAYER_TYPE_CODES[state.kind],
            state.depth,
            space.conv_filters.index(conv.filters) + 1 if conv else 0,
            space.conv_kernels.index(conv.kernel) + 1 if conv else 0,
            space.conv_strides.index(conv.stride) + 1 if conv else 0,
            space.pools.index((pool.size, pool.stride)) + 1 if pool else 0,
            space.fc_widths.index(fc.width) + 1 if fc else 0,
            state.size,
            space.size_bin(state.size),
            state.fc_count,
        ],
        dtype=np.int64,
    )


class CNNDesignEnv(gym.Env):
    """Design a convolutional network layer by layer, as in MetaQNN (Baker et al., 2017).

    ## Description
    One episode builds one architecture. At each step the agent appends a layer (a conv, a
    pool, an FC layer or global average pooling) or terminates, which appends the softmax
    classifier ``SM(classes)``. The MetaQNN rules (see :mod:`envs.space`) decide which layers
    may come next; :meth:`action_masks` exposes them. When the architecture is finished it is
    handed to the injected reward function, whose value (for example validation accuracy after
    training) is the episode's only non-zero reward.

    ## Action Space
    ``Discrete(n)`` over every layer choice of the search space, in the order of
    ``space.actions``: each ``C(filters, kernel, stride)``, each ``P(size, stride)``, each
    ``FC(width)``, ``GAP`` (when enabled) and, last, terminate (``SM(classes)``). For the
    ``mnist`` preset n = 20. Which actions are legal depends on the state: see
    :meth:`action_masks` (also ``info["action_mask"]``), which ``sb3_contrib.MaskablePPO``
    reads.

    ## Observation Space
    ``MultiDiscrete`` vector of 10 integers encoding the MetaQNN state
    (:data:`OBSERVATION_FIELDS`): layer type of the last layer (0 start, 1 conv, 2 pool, 3 FC,
    4 GAP, 5 softmax/terminal); depth (layers so far); conv filters, conv kernel and conv
    stride of the last layer (1 + index into the space's choices, 0 if not a conv); pool
    choice (1 + index, 0 if not a pool); FC width (1 + index, 0 if not FC); the representation
    size ``R`` in pixels; its size bin (0 for the largest sizes); the number of consecutive FC
    layers. The observation determines the legal actions (the process is Markov).

    ## Starting State
    The empty network on the input: layer type start, depth 0, ``R`` = input size.
    ``reset`` draws no randomness; the environment is deterministic.

    ## Reward
    0 on every step but the last. Terminating gives ``reward_fn(architecture)``
    (0.0 when no reward function was given). An illegal action ends the episode with
    ``invalid_action_reward`` (default -1.0, below any accuracy) and the architecture is not
    evaluated.

    ## Episode End
    The episode terminates when the agent terminates (``SM`` appended; forced at the depth
    limit, where terminate is the only legal action) or takes an illegal action. It is never
    truncated: an episode has at most ``max_depth + 1`` steps.
    ``info["architecture"]`` holds the architecture's string form; after an illegal action
    ``info["invalid_action"]`` says which layer broke which rules.

    ## Arguments
    ```python
    gymnasium.make("metaqnn/CNNDesign-v0", space="mnist", reward_fn=my_reward)
    ```
    * ``space``: a :class:`SearchSpace` or a preset name (``digits``, ``mnist``,
      ``fashion-mnist``, ``cifar10``, ``svhn``, ``cifar100``).
    * ``reward_fn``: ``Architecture -> float``, called once per finished architecture.
    * ``invalid_action_reward``: reward for an illegal action.
    * ``render_mode``: ``None`` or ``"ansi"`` (the architecture so far, as text).

    ## Version History
    * v0: initial version.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        space: SearchSpace | str = "digits",
        reward_fn: RewardFn | None = None,
        invalid_action_reward: float = -1.0,
        render_mode: str | None = None,
    ) -> None:
        if isinstance(space, str):
            space = get_space(space)
        if not isinstance(space, SearchSpace):
            raise TypeError(f"space must be a SearchSpace or a preset name, got {space!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode {render_mode!r} is not supported; use one of "
                f"{self.metadata['render_modes']} or None"
            )
        self.space = space
        self.reward_fn = reward_fn
        self.invalid_action_reward = float(invalid_action_reward)
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(len(space.actions))
        self.observation_space = observation_space(space)
        self._state = space.start()
        self._layers: list[Layer] = []
        self._done = False

    @property
    def state(self) -> State:
        """The current MetaQNN state."""
        return self._state

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The layers added so far in this episode."""
        return tuple(self._layers)

    def action_masks(self) -> np.ndarray:
        """Boolean mask over the actions: True where legal in the current state."""
        if self._done:
            return np.zeros(self.action_space.n, dtype=bool)
        return self.space.action_mask(self._state)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new, empty architecture."""
        super().reset(seed=seed)
        self._state = self.space.start()
        self._layers = []
        self._done = False
        return encode_state(self.space, self._state), self._info()

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Append the layer of ``action`` (or terminate); see the class docstring."""
        if self._done:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        index = int(action)
        if not 0 <= index < self.action_space.n:
            raise ValueError(f"action {action!r} is outside Discrete({self.action_space.n})")
        layer = self.space.actions[index]
        broken = self.space.violations(self._state, layer)
        if broken:
            obs = encode_state(self.space, self._state)
            info = self._info()
            info["invalid_action"] = f"{layer} breaks {', '.join(broken)}"
            self._done = True
            return obs, self.invalid_action_reward, True, False, info
        self._layers.append(layer)
        self._state = self.space.next_state(self._state, layer)
        self._done = self._state.terminal
        reward = 0.0
        info = self._info()
        if self._done:
            architecture = Architecture(tuple(self._layers))
            info["architecture"] = str(architecture)
            if self.reward_fn is not None:
                reward = float(self.reward_fn(architecture))
        return encode_state(self.space, self._state), reward, self._done, False, info

    def render(self) -> str | None:
        """With ``render_mode="ansi"``, the architecture so far and the current state."""
        if self.render_mode != "ansi":
            return None
        layers = ", ".join(str(layer) for layer in self._layers)
        state = self._state
        return f"[{layers}]  depth={state.depth} size={state.size} type={state.kind}"

    def _info(self) -> dict[str, Any]:
        layers = ", ".join(str(layer) for layer in self._layers)
        return {"action_mask": self.action_masks(), "architecture": f"[{layers}]"}
