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
* ``maskable_ppo``: sb3-contrib's ``MaskablePPO`` with PPO's settings, reading the action masks
  (needs ``pip install 'metaqnn[rl]'``). The SB3 runners are in :mod:`.sb3_agents`.
* ``evolution``: regularized (aging) evolution (Real et al. 2019) by mutating action
  sequences through the environment (:mod:`.evolution`).
* ``tpe``: Optuna's TPE, one categorical per step over every action, illegal choices mapped
  onto legal ones (:mod:`.tpe`; needs ``pip install 'metaqnn[tpe]'``).

The budget is the number of unique architectures a run evaluates. An architecture a run has
evaluated before reuses its reward and does not count (as in MetaQNN), and it is counted as a
repeat. Rewards are computed once per architecture in a :class:`CachedReward` that every run
shares (the reward must be deterministic per architecture), which saves CPU without changing
any run's budget. A run also stops after ``max_env_steps`` environment steps, since a policy
that only repeats itself would never reach the budget. The pieces every run shares (reward
cache, recorder, settings, result) are in :mod:`.agent_runs` and re-exported here.
"""

from __future__ import annotations

import time

import numpy as np

from envs.layers import Architecture
from metaqnn.errors import ConfigError
from metaqnn.search.agent import QLearningAgent, Trajectory, play, trajectory_of
from metaqnn.search.agent_runs import (
    AgentRun,
    AgentRunner,
    AgentSettings,
    BudgetExhaustedError,
    CachedReward,
    RunRecorder,
    finish_run,
)
from metaqnn.search.evolution import run_evolution
from metaqnn.search.replay import ReplayMemory
from metaqnn.search.sb3_agents import SB3_AGENTS, SB3_RUNNERS, SB3Agent, run_sb3
from metaqnn.search.schedule import EpsilonSchedule
from metaqnn.search.tpe import run_tpe

__all__ = [
    "AGENTS",
    "SB3_AGENTS",
    "AgentRun",
    "AgentRunner",
    "AgentSettings",
    "BudgetExhaustedError",
    "CachedReward",
    "RunRecorder",
    "SB3Agent",
    "run_agent",
    "run_qlearning",
    "run_random",
    "run_sb3",
]


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
    return finish_run("qlearning", seed, rec, start, episodes=episodes, illegal=0, steps=steps,
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
    return finish_run("random", seed, rec, start, episodes=episodes, illegal=0, steps=steps)


#: Every agent by name: ``(settings, shared reward, seed) -> AgentRun``.
AGENTS: dict[str, AgentRunner] = {
    "qlearning": run_qlearning,
    "random": run_random,
    "evolution": run_evolution,
    "tpe": run_tpe,
    **SB3_RUNNERS,
}


def run_agent(name: str, settings: AgentSettings, cache: CachedReward, seed: int) -> AgentRun:
    """Run the agent ``name`` (a key of :data:`AGENTS`) once.

    Raises:
        ConfigError: If the name is unknown, or the agent's optional package is not installed.
    """
    if name not in AGENTS:
        raise ConfigError(f"unknown agent {name!r}; choose from {sorted(AGENTS)}")
    return AGENTS[name](settings, cache, seed)
