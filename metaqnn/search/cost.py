"""A cost-aware search: the environment's action mask, further limited to the layers whose
architecture so far stays within a FLOPs cap.

:class:`CostMask` wraps :class:`envs.cnn_design.CNNDesignEnv`. The search builds its
architectures at a reduced width (widths / ``search_divisor``), but what the final phase can
afford is counted at another (widths / ``cost_divisor``): so a layer is allowed only when the
layers so far plus it, rescaled to the cost width (:mod:`metaqnn.core.widths`), cost at most
``max_flops`` forward FLOPs per image. FLOPs of a prefix only grow with more layers, so every
finished architecture keeps to the cap before its classifier; terminating (the ``SM``
classifier, whose FLOPs are all the overshoot there can be) is never masked, so no episode
ends in a dead end.

Masks are cached per (state, channels, FLOPs so far): a step is a dictionary look-up, and
the masks are the same whenever an architecture is built again (a replayed trajectory).
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from envs.cnn_design import CNNDesignEnv, IllegalActionError, encode_state
from envs.layers import Architecture, Layer
from envs.space import SearchSpace, State
from metaqnn.core.widths import layer_step, rescale_layer, width_maps
from metaqnn.errors import ConfigError
from metaqnn.search.config import SearchConfig

#: The rule an over-cap layer breaks, as named in ``info["invalid_action"]`` and errors.
RULE = "max-design-flops"

_Key = tuple[State, int, int]
_Masks = tuple[np.ndarray, np.ndarray]


class CostMask(gym.Wrapper):
    """``env`` with ``action_masks()`` and ``info["action_mask"]`` also forbidding the layers
    that would take the architecture over ``max_flops`` FLOPs per image at the cost width.

    An over-cap action taken anyway is treated as the environment treats an illegal one
    (``illegal_action``): with ``"penalize"`` the episode ends with its penalty,
    ``info["illegal_action"]`` True and ``info["invalid_action"]`` naming the cap; with
    ``"raise"`` an :class:`~envs.cnn_design.IllegalActionError` (rule
    :data:`RULE`) leaves the episode as it was.

    Args:
        env: The environment (its space at widths / ``search_divisor``).
        max_flops: Forward FLOPs per image an architecture may cost before its classifier.
        space: The full-width space ``env``'s space was scaled from.
        search_divisor: ``env``'s widths are ``space``'s divided by this.
        cost_divisor: FLOPs are counted at ``space``'s widths divided by this.

    Raises:
        ConfigError: If ``max_flops`` is not positive and finite, or a divisor is not a
            positive integer.
    """

    def __init__(self, env: gym.Env, max_flops: float, *, space: SearchSpace,
                 search_divisor: int = 1, cost_divisor: int = 1) -> None:  # fmt: skip
        super().__init__(env)
        if not (isinstance(max_flops, int | float) and math.isfinite(max_flops)
                and max_flops > 0):  # fmt: skip
            raise ConfigError(f"CostMask: max_flops={max_flops!r} must be a positive number")
        for name, value in (("search_divisor", search_divisor), ("cost_divisor", cost_divisor)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"CostMask: {name}={value!r} must be a positive integer")
        self.max_flops = float(max_flops)
        self.cost_divisor = cost_divisor
        inner: CNNDesignEnv = env.unwrapped
        self._space = inner.space
        maps = width_maps(space, search_divisor, cost_divisor)
        named = {"divisor": search_divisor, "space_name": space.name}
        #: Each action's layer at the cost width.
        self.cost_layers: tuple[Layer, ...] = tuple(
            rescale_layer(layer, maps, **named) for layer in self._space.actions
        )
        self._terminate = self._space.terminate_action
        self._masks: dict[_Key, _Masks] = {}
        self._flops: dict[tuple[int, int], np.ndarray] = {}
        self._start = (self._space.input_channels, self._space.input_size, 0)
        self._cost = self._start  # channels, size and FLOPs so far, at the cost width
        self._done = False  # the environment is new (or reset before its first step)

    # ------------------------------------------------------------------ the cap
    @property
    def flops(self) -> int:
        """FLOPs per image of the layers so far, at the cost width."""
        return self._cost[2]

    def _masks_at(self, state: State, cost: tuple[int, int, int],
                  rules: np.ndarray | None = None) -> _Masks:  # fmt: skip
        """The environment's mask in ``state`` (``rules``, when the environment just gave it)
        and it AND the cap, for the layers so far costing ``cost`` (channels, size and FLOPs
        at the cost width)."""
        channels, size, flops = cost
        key = (state, channels, flops)
        masks = self._masks.get(key)
        if masks is None:
            rules = self._space.action_mask(state) if rules is None else rules.copy()
            mask = rules & (flops + self._layer_flops(channels, size) <= self.max_flops)
            mask[self._terminate] = rules[self._terminate]
            masks = self._masks[key] = (rules, mask)
        return masks

    def _layer_flops(self, channels: int, size: int) -> np.ndarray:
        """FLOPs of each action's layer at the cost width on a ``channels x size x size``
        input."""
        flops = self._flops.get((channels, size))
        if flops is None:
            flops = np.array([layer_step(layer, channels, size)[0] for layer in self.cost_layers],
                             dtype=np.float64)  # fmt: skip
            self._flops[(channels, size)] = flops
        return flops

    def action_masks(self) -> np.ndarray:
        """The environment's mask AND the cap (all False once the episode is over)."""
        if self._done:
            return np.zeros(self.action_space.n, dtype=bool)
        return self._masks_at(self.env.unwrapped.state, self._cost)[1].copy()

    # ------------------------------------------------------------------ the Gymnasium API
    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:  # fmt: skip
        """Start a new, empty architecture."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._cost, self._done = self._start, False
        self._masks_at(self.env.unwrapped.state, self._cost, info["action_mask"])
        info["action_mask"] = self.action_masks()
        return obs, info

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """The environment's step, unless ``action`` is legal there but over the cap."""
        if self._done:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        inner: CNNDesignEnv = self.env.unwrapped
        index = int(action)
        in_space = 0 <= index < self.action_space.n
        if in_space:
            rules, mask = self._masks_at(inner.state, self._cost)
            if rules[index] and not mask[index]:
                return self._over_cap(inner, index)
        obs, reward, terminated, truncated, info = self.env.step(action)
        if in_space and not info["illegal_action"]:
            channels, size, flops = self._cost
            extra, channels, size = layer_step(self.cost_layers[index], channels, size)
            self._cost = (channels, size, flops + extra)
        self._done = terminated or truncated
        if not self._done:
            self._masks_at(inner.state, self._cost, info["action_mask"])
        info["action_mask"] = self.action_masks()
        return obs, reward, terminated, truncated, info

    def _over_cap(self, inner: CNNDesignEnv,
                  index: int) -> tuple[Any, float, bool, bool, dict[str, Any]]:  # fmt: skip
        layer = inner.space.actions[index]
        wide = self.cost_layers[index]
        extra = layer_step(wide, self._cost[0], self._cost[1])[0]
        where = f"after [{', '.join(str(x) for x in inner.layers)}]"
        what = (
            f"{layer} ({wide} at widths / {self.cost_divisor}) {where} takes the FLOPs "
            f"per image to {self.flops + extra:,}, over the cap of {self.max_flops:,.0f}"
        )
        if inner.illegal_action == "raise":
            message = f"illegal action {index}: {what}"
            raise IllegalActionError(message, index, layer, inner.state, [RULE])
        self._done = True
        obs = encode_state(inner.space, inner.state)
        info = {"action_mask": self.action_masks(), "architecture": _layers(inner),
                "illegal_action": True,
                "invalid_action": f"{what}: breaks {RULE} (action {index})"}  # fmt: skip
        return obs, inner.invalid_action_reward, True, False, info


def _layers(inner: CNNDesignEnv) -> str:
    return "[" + ", ".join(str(layer) for layer in inner.layers) + "]"


def cost_masked(env: gym.Env, config: SearchConfig) -> gym.Env:
    """``env`` under :class:`CostMask` with ``config``'s cap (``env`` itself without one)."""
    if config.max_flops is None:
        return env
    return CostMask(env, config.max_flops, space=config.full_space(),
                    search_divisor=config.width_divisor,
                    cost_divisor=config.flops_width_divisor)  # fmt: skip


def sample(env: gym.Env, rng: np.random.Generator) -> Architecture:
    """A random architecture of ``env`` (a walk that picks uniformly among the actions its
    masks allow; under :class:`CostMask`, one within the cap)."""
    _, info = env.reset()
    while True:
        legal = np.flatnonzero(info["action_mask"])
        _, _, terminated, truncated, info = env.step(int(rng.choice(legal)))
        if terminated or truncated:
            return Architecture.parse(info["architecture"])
