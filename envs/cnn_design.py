"""The Gymnasium environment: build a CNN layer by layer in a MetaQNN search space."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
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
from envs.render import draw_architecture
from envs.space import SearchSpace, State, get_space

#: A reward: the finished architecture -> a float (for example validation accuracy).
RewardFn = Callable[[Architecture], float]

#: The values of ``CNNDesignEnv(illegal_action=...)``: end the episode with a penalty, or raise.
ILLEGAL_ACTION_MODES: tuple[str, ...] = ("penalize", "raise")

#: The default ``reward_range``: accuracies. Its penalty is -1.0.
DEFAULT_REWARD_RANGE: tuple[float, float] = (0.0, 1.0)


class IllegalActionError(ValueError):
    """An illegal action taken with ``illegal_action="raise"``.

    Attributes:
        action: The action index.
        layer: The layer of that action.
        state: The state it was taken in (unchanged: the episode goes on).
        rules: Names of the broken rules (keys of :data:`envs.space.RULES`).
    """

    def __init__(self, message: str, action: int, layer: Layer, state: State, rules: list[str]):
        super().__init__(message)
        self.action = action
        self.layer = layer
        self.state = state
        self.rules = tuple(rules)


class NoRewardWarning(UserWarning):
    """The environment was made without a reward function: every reward is 0.0."""


class IllegalActionWarning(UserWarning):
    """An agent took an illegal action (and was penalized): it does not read the masks."""


class RewardRangeWarning(UserWarning):
    """The reward function returned a value outside the declared ``reward_range``."""


def zero_reward(architecture: Architecture) -> float:
    """A reward of 0.0 for every architecture. Pass it as ``reward_fn`` to say that only the
    rules are wanted (the caller scores architectures itself); it silences
    :class:`NoRewardWarning`."""
    return 0.0


def illegal_action_penalty(reward_range: Sequence[float]) -> float:
    """The penalty of an illegal action for rewards in ``reward_range = (lo, hi)``:
    ``lo - (hi - lo)``, one range width below the worst reward (-1.0 for ``(0, 1)``)."""
    lo, hi = reward_range
    return float(lo - (hi - lo))


def _checked_range(reward_range: Any) -> tuple[float, float]:
    try:
        if isinstance(reward_range, str | bytes):
            raise TypeError
        lo, hi = (float(v) for v in reward_range)
    except (TypeError, ValueError):
        lo = hi = math.nan
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(
            f"reward_range must be two finite numbers (lo, hi) with lo < hi, got {reward_range!r}"
        )
    return lo, hi


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

    The rules forbid many layers in many states, so use a masked agent: sb3-contrib's
    ``MaskablePPO`` reads :meth:`action_masks` before every step and never takes an illegal
    action (``pip install 'metaqnn[rl]'``)::

        import gymnasium, envs  # importing envs registers metaqnn/CNNDesign-v0
        from sb3_contrib import MaskablePPO

        env = gymnasium.make("metaqnn/CNNDesign-v0", space="digits", reward_fn=my_accuracy)
        model = MaskablePPO("MlpPolicy", env, seed=0).learn(4_096)
        obs, info = env.reset()
        action, _ = model.predict(obs, action_masks=info["action_mask"])

    Unmasked agents (PPO, DQN, ...) work too: they learn the rules from the illegal-action
    penalty, which must lie below every reward; state your reward's range (``reward_range``).

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
    ``mnist`` preset n = 20. Which actions are legal depends on the state: :meth:`action_masks`
    and ``info["action_mask"]`` (always equal: a bool array, True where legal; all False once
    the episode is over, illegal end included).

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
    0 on every step but the last. Terminating gives ``reward_fn(architecture)``. Without a
    reward function every reward is 0.0 and the constructor warns (:class:`NoRewardWarning`,
    once per environment); pass :func:`zero_reward` to say so on purpose. A reward outside
    ``reward_range`` warns once per environment (:class:`RewardRangeWarning`).

    An illegal action (one :meth:`action_masks` marks False) depends on ``illegal_action``:

    * ``"penalize"`` (default): the episode ends (terminated) with the penalty
      ``lo - (hi - lo)`` for ``reward_range = (lo, hi)`` (-1.0 for the default ``(0, 1)``),
      or ``invalid_action_reward`` when given; the architecture is not evaluated;
      ``info["illegal_action"]`` is True and ``info["invalid_action"]`` names the layer and
      the broken rules; the first one per environment warns (:class:`IllegalActionWarning`).
    * ``"raise"``: :class:`IllegalActionError` names the action, its layer, the state and the
      broken rules; the episode is left as it was (choose again, or reset).

    ## Episode End
    The episode terminates when the agent terminates (``SM`` appended; forced at the depth
    limit, where terminate is the only legal action) or is penalized for an illegal action.
    It is never truncated: an episode has at most ``max_depth + 1`` steps. Every ``info`` holds
    ``action_mask``, ``architecture`` (the layers so far as a string; the finished
    architecture at the end) and ``illegal_action`` (bool).

    ## Arguments
    ```python
    gymnasium.make("metaqnn/CNNDesign-v0", space="mnist", reward_fn=my_reward,
                   reward_range=(0.0, 1.0), illegal_action="penalize", render_mode=None)
    ```
    * ``space``: a :class:`SearchSpace` or a preset name (``digits``, ``mnist``,
      ``fashion-mnist``, ``cifar10``, ``svhn``, ``cifar100``).
    * ``reward_fn``: ``Architecture -> float``, called once per finished architecture.
    * ``invalid_action_reward``: an explicit penalty for an illegal action, replacing the one
      derived from ``reward_range`` (``"penalize"`` only).
    * ``render_mode``: ``None``, ``"ansi"`` (the architecture so far, as text) or
      ``"rgb_array"`` (a ``uint8`` picture ``(H, W, 3)`` of it, one block per layer: colour =
      type, height = representation size, width = channels; see :mod:`envs.render`). SB3's
      ``make_vec_env`` asks for ``"rgb_array"``, its video recorder shows the frames; with
      ``SubprocVecEnv`` name the id ``"envs:metaqnn/CNNDesign-v0"`` (it imports ``envs``).
    * ``illegal_action`` (keyword): ``"penalize"`` or ``"raise"`` (see Reward).
    * ``reward_range`` (keyword): ``(lo, hi)``, the range of ``reward_fn``'s values; it sets
      the penalty. Default ``(0.0, 1.0)`` (accuracies).

    ## Version History
    * v0: initial version; ``rgb_array`` rendering, ``illegal_action``, ``reward_range`` and
      ``info["illegal_action"]`` added without changing the default dynamics.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        space: SearchSpace | str = "digits",
        reward_fn: RewardFn | None = None,
        invalid_action_reward: float | None = None,
        render_mode: str | None = None,
        *,
        illegal_action: str = "penalize",
        reward_range: tuple[float, float] = DEFAULT_REWARD_RANGE,
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
        if not isinstance(illegal_action, str) or illegal_action not in ILLEGAL_ACTION_MODES:
            raise ValueError(
                f"illegal_action {illegal_action!r} is not supported; use one of "
                f"{list(ILLEGAL_ACTION_MODES)}"
            )
        if reward_fn is not None and not callable(reward_fn):
            raise TypeError(
                f"reward_fn must be callable (Architecture -> float), got {reward_fn!r}"
            )
        self.reward_range = _checked_range(reward_range)
        if invalid_action_reward is None:
            penalty = illegal_action_penalty(self.reward_range)
        elif illegal_action == "raise":
            raise ValueError(
                f"invalid_action_reward={invalid_action_reward!r} has no effect with "
                "illegal_action='raise'; leave it out"
            )
        else:
            penalty = float(invalid_action_reward)
            if not math.isfinite(penalty):
                raise ValueError(f"invalid_action_reward must be finite, got {penalty!r}")
        self.space = space
        self.reward_fn = reward_fn
        self.illegal_action = illegal_action
        #: The reward of an illegal action under ``illegal_action="penalize"``.
        self.invalid_action_reward = penalty
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(len(space.actions))
        self.observation_space = observation_space(space)
        self._state = space.start()
        self._layers: list[Layer] = []
        self._done = False
        self._illegal = False
        self._warned: set[type[Warning]] = set()
        if reward_fn is None:
            self._warn_once(
                NoRewardWarning,
                "CNNDesignEnv was made without reward_fn: every episode's reward is 0.0, so an "
                "agent learns nothing. Pass reward_fn=(Architecture -> float), or "
                "reward_fn=envs.cnn_design.zero_reward if only the rules are wanted.",
            )

    @property
    def state(self) -> State:
        """The current MetaQNN state."""
        return self._state

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The layers added so far in this episode."""
        return tuple(self._layers)

    def action_masks(self) -> np.ndarray:
        """Boolean mask over the actions: True where legal in the current state; all False once
        the episode is over. ``info["action_mask"]`` is always equal to it."""
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
        self._illegal = False
        return encode_state(self.space, self._state), self._info()

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Append the layer of ``action`` (or terminate); see the class docstring.

        Raises:
            RuntimeError: If the episode is over (call ``reset``).
            ValueError: If ``action`` is outside the action space.
            IllegalActionError: On an illegal action with ``illegal_action="raise"``.
        """
        if self._done:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        index = int(action)
        if not 0 <= index < self.action_space.n:
            raise ValueError(f"action {action!r} is outside Discrete({self.action_space.n})")
        layer = self.space.actions[index]
        broken = self.space.violations(self._state, layer)
        if broken:
            return self._illegal_step(index, layer, broken)
        self._layers.append(layer)
        self._state = self.space.next_state(self._state, layer)
        self._done = self._state.terminal
        reward = 0.0
        info = self._info()
        if self._done and self.reward_fn is not None:
            architecture = Architecture(tuple(self._layers))
            reward = float(self.reward_fn(architecture))
            self._check_range(reward, architecture)
        return encode_state(self.space, self._state), reward, self._done, False, info

    def render(self) -> str | np.ndarray | None:
        """The architecture so far: text with ``render_mode="ansi"``, a ``uint8`` picture
        ``(H, W, 3)`` with ``"rgb_array"`` (see :mod:`envs.render`), else None."""
        if self.render_mode == "rgb_array":
            status = "illegal" if self._illegal else "finished" if self._done else "building"
            return draw_architecture(self.space, self._layers, status)
        if self.render_mode != "ansi":
            return None
        layers = ", ".join(str(layer) for layer in self._layers)
        state = self._state
        return f"[{layers}]  depth={state.depth} size={state.size} type={state.kind}"

    def _illegal_step(
        self, index: int, layer: Layer, broken: list[str]
    ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        state = self._state
        where = (
            f"after [{', '.join(str(x) for x in self._layers)}] (depth {state.depth}, "
            f"size {state.size}, last layer {state.kind}, {state.fc_count} FC in a row)"
        )
        if self.illegal_action == "raise":
            message = f"illegal action {index} ({layer}) {where}: breaks {', '.join(broken)}"
            raise IllegalActionError(message, index, layer, state, broken)
        self._done = True  # before _info(): the mask of an ended episode is all False
        self._illegal = True
        info = self._info()
        info["invalid_action"] = f"{layer} breaks {', '.join(broken)} (action {index} {where})"
        self._warn_once(
            IllegalActionWarning,
            f"illegal action {index} ({layer}) {where} broke {', '.join(broken)} and ended the "
            f"episode with reward {self.invalid_action_reward}; info['illegal_action'] is True. "
            "Masked agents (sb3_contrib.MaskablePPO, env.action_masks()) never take one. "
            "Pass illegal_action='raise' to stop on it instead.",
            stacklevel=4,
        )
        return encode_state(self.space, state), self.invalid_action_reward, True, False, info

    def _check_range(self, reward: float, architecture: Architecture) -> None:
        lo, hi = self.reward_range
        if not lo <= reward <= hi:
            self._warn_once(
                RewardRangeWarning,
                f"reward_fn gave {reward} for {architecture}, outside reward_range {(lo, hi)}; "
                f"the illegal-action penalty {self.invalid_action_reward} may not be below "
                "every reward, and unmasked agents may learn to end episodes illegally. Pass "
                "reward_range=(lo, hi) covering the rewards.",
                stacklevel=4,
            )

    def _warn_once(self, category: type[Warning], message: str, stacklevel: int = 3) -> None:
        if category not in self._warned:  # stacklevel 3: the caller of the caller
            self._warned.add(category)
            warnings.warn(message, category, stacklevel=stacklevel)

    def _info(self) -> dict[str, Any]:
        layers = ", ".join(str(layer) for layer in self._layers)
        return {
            "action_mask": self.action_masks(),
            "architecture": f"[{layers}]",
            "illegal_action": self._illegal,
        }
