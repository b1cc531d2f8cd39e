"""Agents to compare with MetaQNN's Q-learner on the same environment, reward and budget.

* ``qlearning``: MetaQNN's tabular Q-learner (:class:`~metaqnn.search.agent.QLearningAgent`, its
  replay memory and epsilon schedule), driven exactly as :class:`metaqnn.search.loop.Search` drives
  it with one in-process worker, minus the SQLite store.
* ``random``: random search, each layer drawn uniformly among the legal actions (the
  space's :meth:`~envs.space.SearchSpace.sample` walk).
* ``ppo``, ``a2c``, ``dqn``: stable-baselines3 algorithms on the plain ``Discrete`` action
  space. They do not read :meth:`~envs.cnn_design.CNNDesignEnv.action_masks`: an illegal
  action ends the episode with the environment's ``invalid_action_reward`` and builds nothing,
  so they learn the rules from that penalty; every illegal episode is counted.

The budget is the number of unique architectures a run evaluates. An architecture a run has
evaluated before reuses its reward and does not count (as in MetaQNN), and it is counted as a
repeat. Rewards are computed once per architecture in a :class:`CachedReward` that every run
shares (the reward must be deterministic per architecture), which saves CPU without changing
any run's budget. A run also stops after ``max_env_steps`` environment steps, since a policy
that only repeats itself would never reach the budget.
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

from envs.cnn_design import CNNDesignEnv
from envs.layers import Architecture
from envs.space import SearchSpace
from metaqnn.errors import ConfigError
from metaqnn.rewards.result import RewardResult
from metaqnn.search.agent import QLearningAgent, Trajectory, play, trajectory_of
from metaqnn.search.replay import ReplayMemory
from metaqnn.search.schedule import EpsilonSchedule


# ------------------------------------------------------------------ rewards
def _result_of(architecture: Architecture, value: float, wall_s: float) -> RewardResult:
    """A :class:`RewardResult` for a plain ``Architecture -> float`` reward."""
    return RewardResult(
        architecture=str(architecture),
        reward=float(value),
        status="ok",
        reason="",
        val_accuracy=float(value),
        test_accuracy=None,
        parameters=0,
        flops=0,
        steps=0,
        restarts=0,
        wall_time_s=wall_s,
    )


class CachedReward:
    """A reward evaluated once per architecture, shared by every agent run.

    Args:
        reward: An object with ``evaluate(architecture) -> RewardResult`` (e.g.
            :class:`metaqnn.teacher.shapes.GTNReward`) or a plain ``Architecture -> float``.
        path: A JSON file that keeps the results (loaded if present, written by :meth:`save`),
            so that a killed experiment does not compute them again.
    """

    def __init__(self, reward: Any, path: str | Path | None = None) -> None:
        self.reward = reward
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
        start = time.perf_counter()
        if hasattr(self.reward, "evaluate"):
            result = self.reward.evaluate(architecture)
        else:
            result = _result_of(architecture, self.reward(architecture), 0.0)
        wall = time.perf_counter() - start
        if not hasattr(self.reward, "evaluate"):
            result = dataclasses.replace(result, wall_time_s=wall)
        self.compute_s += wall
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
        agent: The agent's name (a key of :data:`AGENTS`).
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


# ------------------------------------------------------------------ agents
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
    """The environment's reward for an illegal action (only SB3 agents take them)."""
    device: str = "cpu"
    """Where SB3 networks run."""
    sb3_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per SB3 agent name, keyword arguments that replace :data:`SB3_AGENTS` defaults."""

    @property
    def budget(self) -> int:
        """Unique architectures per run: the schedule's total."""
        return EpsilonSchedule.parse(self.schedule).total

    def env(self, reward_fn: Callable[[Architecture], float] | None = None) -> CNNDesignEnv:
        """A fresh environment over the space."""
        return CNNDesignEnv(
            self.space, reward_fn=reward_fn, invalid_action_reward=self.invalid_action_reward
        )


def _finish(
    name: str, seed: int, rec: RunRecorder, start: float, *, episodes: int, illegal: int,
    steps: int, epsilons: tuple[float, ...] = (),
) -> AgentRun:  # fmt: skip
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


def run_qlearning(settings: AgentSettings, cache: CachedReward, seed: int) -> AgentRun:
    """MetaQNN's Q-learner for one budget, sampled and updated as
    :class:`metaqnn.search.loop.Search` does with one in-process worker: a repeat reuses its
    reward, is remembered and replayed but does not count; each new model is evaluated, remembered
    and replayed."""
    start = time.perf_counter()
    schedule = EpsilonSchedule.parse(settings.schedule)
    rec = RunRecorder(cache, schedule.total)
    env = settings.env()
    agent = QLearningAgent(env.action_space.n, alpha=settings.alpha)
    memory = ReplayMemory(lambda arch: trajectory_of(env, arch))
    rng = np.random.default_rng(seed)
    episodes = steps = 0
    epsilons: list[float] = []
    while not rec.exhausted and steps < settings.max_env_steps:
        epsilon = schedule.epsilon(len(rec.architectures))
        trajectory: Trajectory = agent.episode(env, epsilon, rng)
        episodes += 1
        steps += len(trajectory.transitions)
        new = not rec.seen(trajectory.architecture)
        reward = rec(Architecture.parse(trajectory.architecture))
        if new:
            epsilons.append(float(epsilon))
        memory.add(trajectory, reward)
        memory.replay(agent, settings.replay, rng)
    return _finish("qlearning", seed, rec, start, episodes=episodes, illegal=0, steps=steps,
                   epsilons=tuple(epsilons))  # fmt: skip


def run_random(settings: AgentSettings, cache: CachedReward, seed: int) -> AgentRun:
    """Random search: every layer uniform among the legal actions, until the budget is spent."""
    start = time.perf_counter()
    rec = RunRecorder(cache, settings.budget)
    env = settings.env()
    rng = np.random.default_rng(seed)
    episodes = steps = 0
    while not rec.exhausted and steps < settings.max_env_steps:
        trajectory = play(env, lambda obs, mask: int(rng.choice(np.flatnonzero(mask))))
        episodes += 1
        steps += len(trajectory.transitions)
        rec(Architecture.parse(trajectory.architecture))
    return _finish("random", seed, rec, start, episodes=episodes, illegal=0, steps=steps)


@dataclass(frozen=True)
class SB3Agent:
    """A stable-baselines3 algorithm and its settings for this environment."""

    algorithm: str
    """Class name in ``stable_baselines3`` (``PPO``, ``A2C``, ``DQN``)."""
    kwargs: dict[str, Any]
    """Constructor keyword arguments (policy ``MlpPolicy`` and the seed are added)."""
    exploration_steps: int | None = None
    """DQN: steps over which epsilon falls from 1 to its final value (turned into the
    ``exploration_fraction`` of the step cap)."""


#: The stable-baselines3 agents: small rollouts and batches because the budget is a few hundred
#: episodes of at most ``max_depth + 1`` steps; undiscounted returns, as MetaQNN's gamma = 1.
SB3_AGENTS: dict[str, SB3Agent] = {
    "ppo": SB3Agent(
        "PPO",
        {
            "n_steps": 64,
            "batch_size": 32,
            "n_epochs": 4,
            "gamma": 1.0,
            "gae_lambda": 0.95,
            "ent_coef": 0.01,
            "learning_rate": 3e-4,
        },
    ),
    "a2c": SB3Agent("A2C", {"n_steps": 8, "gamma": 1.0, "ent_coef": 0.01, "learning_rate": 7e-4}),
    "dqn": SB3Agent(
        "DQN",
        {
            "learning_starts": 100,
            "buffer_size": 10_000,
            "batch_size": 32,
            "train_freq": 1,
            "target_update_interval": 100,
            "gamma": 1.0,
            "exploration_final_eps": 0.05,
            "learning_rate": 1e-3,
        },
        exploration_steps=1_000,
    ),
}


def _budget_callback(recorder: RunRecorder, counts: dict[str, int]) -> Any:
    """An SB3 callback that counts episodes and illegal ones and stops at the budget."""
    from stable_baselines3.common.callbacks import BaseCallback

    class BudgetCallback(BaseCallback):
        def _on_step(self) -> bool:
            counts["steps"] += 1
            for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
                if done:
                    counts["episodes"] += 1
                    counts["illegal"] += "invalid_action" in info
            return not recorder.exhausted

    return BudgetCallback()


def run_sb3(name: str, settings: AgentSettings, cache: CachedReward, seed: int) -> AgentRun:
    """A stable-baselines3 agent (a key of :data:`SB3_AGENTS`) until the budget is spent or the
    step cap is reached. It sees only ``Discrete(n)``: illegal actions end the episode with the
    environment's invalid-action reward and are counted."""
    import stable_baselines3

    if name not in SB3_AGENTS:
        raise ConfigError(f"unknown stable-baselines3 agent {name!r}; choose from "
                          f"{sorted(SB3_AGENTS)}")  # fmt: skip
    spec = SB3_AGENTS[name]
    start = time.perf_counter()
    rec = RunRecorder(cache, settings.budget)
    env = settings.env(reward_fn=rec)
    kwargs = dict(spec.kwargs)
    if spec.exploration_steps is not None:
        kwargs["exploration_fraction"] = min(1.0, spec.exploration_steps / settings.max_env_steps)
    kwargs.update(settings.sb3_overrides.get(name, {}))
    cls = getattr(stable_baselines3, spec.algorithm)
    model = cls("MlpPolicy", env, seed=seed, device=settings.device, verbose=0, **kwargs)
    counts = {"steps": 0, "episodes": 0, "illegal": 0}
    model.learn(total_timesteps=settings.max_env_steps, callback=_budget_callback(rec, counts))
    return _finish(name, seed, rec, start, episodes=counts["episodes"],
                   illegal=counts["illegal"], steps=counts["steps"])  # fmt: skip


def _sb3_runner(name: str) -> Callable[[AgentSettings, CachedReward, int], AgentRun]:
    return lambda settings, cache, seed: run_sb3(name, settings, cache, seed)


#: Every agent by name: ``(settings, shared reward, seed) -> AgentRun``.
AGENTS: dict[str, Callable[[AgentSettings, CachedReward, int], AgentRun]] = {
    "qlearning": run_qlearning,
    "random": run_random,
    **{name: _sb3_runner(name) for name in SB3_AGENTS},
}


def run_agent(name: str, settings: AgentSettings, cache: CachedReward, seed: int) -> AgentRun:
    """Run the agent ``name`` (a key of :data:`AGENTS`) once.

    Raises:
        ConfigError: If the name is unknown.
    """
    if name not in AGENTS:
        raise ConfigError(f"unknown agent {name!r}; choose from {sorted(AGENTS)}")
    return AGENTS[name](settings, cache, seed)
