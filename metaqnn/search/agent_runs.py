"""What every agent run shares: the reward cache, the per-run budget, the run's record and the
settings (see :mod:`metaqnn.search.baselines` for the agents themselves).

The budget is the number of unique architectures a run evaluates. An architecture a run has
evaluated before reuses its reward and does not count (as in MetaQNN), and it is counted as a
repeat. Rewards are computed once per architecture in a :class:`CachedReward` that every run
shares (the reward must be deterministic per architecture), which saves CPU without changing
any run's budget.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from envs.cnn_design import CNNDesignEnv, zero_reward
from envs.layers import Architecture
from envs.space import SearchSpace
from metaqnn.errors import ConfigError
from metaqnn.rewards.result import EvaluatingReward, RewardResult, as_reward
from metaqnn.search.schedule import EpsilonSchedule


# ------------------------------------------------------------------ rewards
class CachedReward:
    """A reward evaluated once per architecture, shared by every agent run.

    Args:
        reward: An object with ``evaluate(architecture) -> RewardResult`` (e.g.
            :class:`metaqnn.rewards.gtn.GTNReward`) or a plain ``Architecture -> float``; None
            until it is set (cached results are served before that).
        path: A JSON file that keeps the results (loaded if present, written by :meth:`save`),
            so that a killed experiment does not compute them again.
    """

    def __init__(self, reward: object | None, path: str | Path | None = None) -> None:
        self.reward: EvaluatingReward | None = None if reward is None else as_reward(reward)
        self.path = Path(path) if path is not None else None
        self.results: dict[str, RewardResult] = {}
        self.computed = 0
        """Rewards computed by this object (cache misses)."""
        self.hits = 0
        """Requests answered from the cache."""
        self.compute_s = 0.0
        """Seconds spent computing rewards."""
        if self.path is not None and self.path.is_file():
            raw = json.loads(self.path.read_text())
            self.results = {k: RewardResult(**v) for k, v in raw.items()}

    def __len__(self) -> int:
        return len(self.results)

    def __contains__(self, architecture: object) -> bool:
        return str(architecture) in self.results

    def evaluate(self, architecture: Architecture) -> RewardResult:
        """The architecture's result: computed on first request, then from the cache."""
        key = str(architecture)
        cached = self.results.get(key)
        if cached is not None:
            self.hits += 1
            return cached
        if self.reward is None:
            raise ConfigError(f"{architecture} is not cached and this CachedReward has no reward")
        start = time.perf_counter()
        result = self.reward.evaluate(architecture)
        self.compute_s += time.perf_counter() - start
        self.computed += 1
        self.results[key] = result
        return result

    def __call__(self, architecture: Architecture) -> float:
        return self.evaluate(architecture).reward

    def save(self) -> None:
        """Write the results to :attr:`path` (atomically; nothing without a path)."""
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: dataclasses.asdict(v) for k, v in self.results.items()}))
        tmp.replace(self.path)


class BudgetExhaustedError(ConfigError):
    """A run asked for a new architecture's reward after its budget was spent."""


class RunRecorder:
    """One run's view of the shared reward: the unique architectures it evaluated, in order.

    Args:
        cache: The shared reward.
        budget: Unique architectures this run may evaluate.
    """

    def __init__(self, cache: CachedReward, budget: int) -> None:
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise ConfigError(f"the budget must be a positive integer, got {budget!r}")
        self.cache, self.budget = cache, budget
        self.architectures: list[str] = []
        self.rewards: list[float] = []
        self.finished = 0
        """Finished architectures requested (unique ones and repeats)."""
        self.repeats = 0
        """Requests for an architecture this run had already evaluated (free)."""
        self.reward_s = 0.0
        """Seconds this run spent waiting for rewards (0 for shared-cache hits)."""
        self._seen: dict[str, float] = {}

    @property
    def exhausted(self) -> bool:
        """Whether the run has evaluated its budget of unique architectures."""
        return len(self.architectures) >= self.budget

    def seen(self, architecture: Architecture | str) -> bool:
        """Whether this run has evaluated ``architecture``."""
        return str(architecture) in self._seen

    def __call__(self, architecture: Architecture) -> float:
        """The reward of ``architecture`` (the environment's ``reward_fn``).

        Raises:
            BudgetExhaustedError: For a new architecture once the budget is spent.
        """
        key = str(architecture)
        self.finished += 1
        if key in self._seen:
            self.repeats += 1
            return self._seen[key]
        if self.exhausted:
            raise BudgetExhaustedError(
                f"budget of {self.budget} unique architectures spent; {key} not evaluated"
            )
        start = time.perf_counter()
        value = self.cache(architecture)
        self.reward_s += time.perf_counter() - start
        self._seen[key] = value
        self.architectures.append(key)
        self.rewards.append(value)
        return value


# ------------------------------------------------------------------ results
@dataclass(frozen=True)
class AgentRun:
    """What one agent run did.

    Attributes:
        agent: The agent's name (a key of :data:`metaqnn.search.baselines.AGENTS`).
        seed: Its seed.
        architectures: The unique architectures it evaluated, in order.
        rewards: Their rewards, in the same order.
        episodes: Episodes played (finished, repeated and illegal ones).
        repeats: Episodes that rebuilt an architecture the run had evaluated (free).
        illegal: Episodes ended by an illegal action (nothing built, nothing evaluated).
        env_steps: Environment steps taken.
        wall_s: Wall time of the run.
        reward_s: Of it, time spent computing rewards (0 for shared-cache hits).
        stopped: ``budget`` (all unique models evaluated) or ``step cap``.
        epsilons: Q-learning: the epsilon each unique model was sampled at (empty otherwise).
    """

    agent: str
    seed: int
    architectures: tuple[str, ...]
    rewards: tuple[float, ...]
    episodes: int
    repeats: int
    illegal: int
    env_steps: int
    wall_s: float
    reward_s: float
    stopped: str
    epsilons: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgentRun:
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        for key in ("architectures", "rewards", "epsilons"):
            data[key] = tuple(data.get(key, ()))
        return cls(**data)

    def best_so_far(self) -> np.ndarray:
        """(unique models,) the best reward among the first ``i + 1`` unique models."""
        return np.maximum.accumulate(np.asarray(self.rewards, dtype=np.float64))

    def rolling_mean(self, window: int) -> np.ndarray:
        """(unique models,) the mean reward of the last ``window`` unique models (fewer at the
        start)."""
        if window < 1:
            raise ConfigError(f"rolling window must be >= 1, got {window!r}")
        r = np.asarray(self.rewards, dtype=np.float64)
        c = np.concatenate([[0.0], np.cumsum(r)])
        i = np.arange(1, len(r) + 1)
        lo = np.maximum(0, i - window)
        return (c[i] - c[lo]) / (i - lo)

    def top_mean(self, k: int) -> float:
        """Mean reward of the ``k`` best unique models (NaN when none)."""
        if not self.rewards:
            return float("nan")
        return float(np.mean(sorted(self.rewards, reverse=True)[:k]))


# ------------------------------------------------------------------ settings
@dataclass(frozen=True)
class AgentSettings:
    """What every agent run gets: the same space, reward, budget and step cap."""

    space: SearchSpace
    """The search space (the environment is ``CNNDesignEnv(space)``)."""
    schedule: str = "1.0:10"
    """MetaQNN epsilon schedule; its total number of models is every agent's budget."""
    replay: int = 100
    """Q-learning: trajectories replayed after each sampled model (MetaQNN: 100)."""
    alpha: float = 0.01
    """Q-learning: learning rate."""
    max_env_steps: int = 20_000
    """Every agent: stop after this many environment steps even if the budget is not spent."""
    invalid_action_reward: float = -1.0
    """The environment's reward for an illegal action (only unmasked SB3 agents take them)."""
    device: str = "cpu"
    """Where SB3 networks run."""
    sb3_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per SB3 agent name, keyword arguments that replace the defaults of
    :data:`metaqnn.search.sb3_agents.SB3_AGENTS`."""

    @property
    def budget(self) -> int:
        """Unique architectures per run: the schedule's total."""
        return EpsilonSchedule.parse(self.schedule).total

    def env(self, reward_fn: Callable[[Architecture], float] | None = None) -> CNNDesignEnv:
        """A fresh environment over the space."""
        return CNNDesignEnv(
            self.space,
            reward_fn=zero_reward if reward_fn is None else reward_fn,
            invalid_action_reward=self.invalid_action_reward,
        )


def finish_run(
    name: str, seed: int, rec: RunRecorder, start: float, *, episodes: int, illegal: int,
    steps: int, epsilons: tuple[float, ...] = (),
) -> AgentRun:  # fmt: skip
    """The :class:`AgentRun` of a run that started at ``start`` (``time.perf_counter()``)
    and recorded its rewards in ``rec``."""
    return AgentRun(
        agent=name,
        seed=seed,
        architectures=tuple(rec.architectures),
        rewards=tuple(rec.rewards),
        episodes=episodes,
        repeats=rec.repeats,
        illegal=illegal,
        env_steps=steps,
        wall_s=time.perf_counter() - start,
        reward_s=rec.reward_s,
        stopped="budget" if rec.exhausted else "step cap",
        epsilons=epsilons,
    )


#: An agent: ``(settings, shared reward, seed) -> AgentRun``.
AgentRunner = Callable[[AgentSettings, CachedReward, int], AgentRun]
