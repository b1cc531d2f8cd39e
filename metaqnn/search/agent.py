"""MetaQNN's agent: a Q-table over the environment's (observation, action) pairs, an
epsilon-greedy policy that respects action masks, and the Q update applied in reverse order
along a finished trajectory.

The agent only uses the Gymnasium API of :class:`envs.CNNDesignEnv` (``reset``, ``step``,
``info["action_mask"]``, ``info["architecture"]``): observations are the keys of its table (they
determine the MetaQNN state), so it never looks inside the environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from envs.layers import Architecture
from metaqnn.errors import ConfigError

Obs = tuple[int, ...]


@dataclass(frozen=True)
class Transition:
    """One step of an episode: observation, action, next observation, the legal actions there,
    and whether the episode ended."""

    obs: Obs
    action: int
    next_obs: Obs
    next_legal: tuple[int, ...]
    done: bool


@dataclass(frozen=True)
class Trajectory:
    """The transitions of one episode and the architecture it built."""

    architecture: str
    transitions: tuple[Transition, ...]

    @property
    def actions(self) -> tuple[int, ...]:
        """The episode's actions."""
        return tuple(t.action for t in self.transitions)


def _legal(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.flatnonzero(mask))


def play(env: gym.Env, choose) -> Trajectory:
    """Run one episode of ``env``, choosing each action with ``choose(obs, mask)``."""
    obs, info = env.reset()
    transitions = []
    while True:
        action = int(choose(tuple(int(v) for v in obs), info["action_mask"]))
        next_obs, _, terminated, truncated, info = env.step(action)
        if "invalid_action" in info:
            raise ConfigError(f"the agent took an illegal action: {info['invalid_action']}")
        done = terminated or truncated
        transitions.append(
            Transition(
                tuple(int(v) for v in obs),
                action,
                tuple(int(v) for v in next_obs),
                () if done else _legal(info["action_mask"]),
                done,
            )
        )
        obs = next_obs
        if done:
            return Trajectory(info["architecture"], tuple(transitions))


def trajectory_of(env: gym.Env, architecture: Architecture | str) -> Trajectory:
    """The trajectory that builds ``architecture`` in ``env`` (its layers as actions, then
    terminate; an architecture ending in the softmax is built by its layers alone).

    Raises:
        ConfigError: If the architecture is not in the environment's space.
    """
    arch = Architecture.parse(architecture) if isinstance(architecture, str) else architecture
    space = env.unwrapped.space
    try:
        actions = iter([space.action_index(layer) for layer in arch.layers])
    except ValueError as exc:
        raise ConfigError(f"{arch} is not in the {space.name} search space: {exc}") from None

    def choose(obs: Obs, mask: np.ndarray) -> int:
        action = next(actions, None)
        if action is None or not mask[action]:
            raise ConfigError(f"{arch} is not a legal path of the {space.name} search space")
        return action

    trajectory = play(env, choose)
    if trajectory.architecture != str(arch):
        raise ConfigError(f"{arch} rebuilt as {trajectory.architecture}")
    return trajectory


class QLearningAgent:
    """Tabular epsilon-greedy Q-learning (MetaQNN).

    Args:
        num_actions: Size of the environment's ``Discrete`` action space.
        alpha: Q learning rate (MetaQNN: 0.01).
        gamma: Discount (MetaQNN: 1.0).
        q_init: Value of every unseen (state, action) (MetaQNN: 0.5).
    """

    def __init__(
        self, num_actions: int, *, alpha: float = 0.01, gamma: float = 1.0, q_init: float = 0.5
    ) -> None:
        if num_actions < 1 or not 0 < alpha <= 1 or not 0 <= gamma <= 1:
            raise ConfigError(
                f"QLearningAgent needs num_actions >= 1, 0 < alpha <= 1 and "
                f"0 <= gamma <= 1; got {num_actions}, {alpha}, {gamma}"
            )
        self.num_actions, self.alpha, self.gamma = int(num_actions), float(alpha), float(gamma)
        self.q_init = float(q_init)
        self.q: dict[Obs, np.ndarray] = {}

    def values(self, obs: Obs) -> np.ndarray:
        """The (num_actions,) Q-values of an observation (created at ``q_init`` on first use)."""
        row = self.q.get(obs)
        if row is None:
            row = self.q[obs] = np.full(self.num_actions, self.q_init, dtype=np.float64)
        return row

    def act(self, obs: Obs, mask: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
        """Epsilon-greedy over the legal actions; ties among the best broken at random."""
        legal = np.flatnonzero(mask)
        if len(legal) == 0:
            raise ConfigError(f"no legal action in state {obs}")
        if rng.random() < epsilon:
            return int(rng.choice(legal))
        q = self.values(obs)[legal]
        best = legal[q == q.max()]
        return int(best[0]) if len(best) == 1 else int(rng.choice(best))

    def episode(self, env: gym.Env, epsilon: float, rng: np.random.Generator) -> Trajectory:
        """Build one architecture in ``env`` with the epsilon-greedy policy."""
        return play(env, lambda obs, mask: self.act(obs, mask, epsilon, rng))

    def update(self, trajectory: Trajectory, reward: float) -> None:
        """MetaQNN's update, last transition first: the final one moves towards ``reward``,
        every earlier one towards ``gamma`` times the best legal Q-value of its next state."""
        a = self.alpha
        for t in reversed(trajectory.transitions):
            target = (
                reward if t.done else self.gamma * self.values(t.next_obs)[list(t.next_legal)].max()
            )
            row = self.values(t.obs)
            row[t.action] = (1 - a) * row[t.action] + a * target

    def greedy(self, env: gym.Env) -> Trajectory:
        """The architecture the agent currently rates best (epsilon 0, first of ties)."""
        return play(
            env,
            lambda obs, mask: int(
                np.flatnonzero(mask)[np.argmax(self.values(obs)[np.flatnonzero(mask)])]
            ),
        )

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Plain-JSON state: settings and the Q-table."""
        return {
            "num_actions": self.num_actions,
            "alpha": self.alpha,
            "gamma": self.gamma,
            "q_init": self.q_init,
            "q": [[list(k), v.tolist()] for k, v in self.q.items()],
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> QLearningAgent:
        """Inverse of :meth:`state_dict`."""
        agent = cls(
            state["num_actions"], alpha=state["alpha"], gamma=state["gamma"], q_init=state["q_init"]
        )
        for key, values in state["q"]:
            row = np.asarray(values, dtype=np.float64)
            if row.shape != (agent.num_actions,):
                raise ConfigError(
                    f"Q-table row for {key} has {row.shape}, expected ({agent.num_actions},)"
                )
            agent.q[tuple(key)] = row
        return agent
