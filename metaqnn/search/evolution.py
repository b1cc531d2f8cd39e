"""Regularized (aging) evolution (Real et al. 2019, "Regularized Evolution for Image Classifier
Architecture Search") over the MetaQNN space, played through the Gymnasium environment.

An architecture is its action sequence in :class:`~envs.cnn_design.CNNDesignEnv`. The run starts
with :data:`POPULATION` random architectures (every layer uniform among the legal actions, as
random search draws them), then repeats a cycle: sample :data:`SAMPLE` members uniformly without
replacement, take the best by reward as the parent, mutate it, evaluate the child, append it
to the population and remove the oldest member (aging: a member survives
:data:`POPULATION` cycles however good it is, unless it is found again).

A mutation (:func:`mutate`) always builds a valid architecture of the space, since every action
it takes is legal where it is taken: it picks a position of the parent's action sequence where
another action is legal, keeps the prefix, takes a different legal action there, then goes on
with the parent's action at each later position while it is legal and a uniform legal action
otherwise, until the episode ends (the environment's depth limit ends it). Changing the
terminate action extends the architecture; changing a layer into terminate truncates it. The
child always differs from its parent. A child this run has already evaluated is a free repeat
(its cached reward, not counted in the budget); the mutation is retried up to
:data:`MUTATION_TRIES` times for a new one, and the last repeat joins the population if none is
found. Every finished episode is handed to the run's
:class:`~metaqnn.search.agent_runs.RunRecorder`, so ``episodes = unique + repeats``.

Defaults: Real et al. used P = 100 and S = 25 for runs of 20,000 models. The budgets here are
50 to 500 models, so P is scaled to 20 (the random initial population is 40 % of a 50-model
budget and 4 % of a 500-model one) and S to 5, keeping the paper's S / P = 1 / 4. The run is
seeded by ``seed`` alone (a :class:`numpy.random.Generator`) and is deterministic.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from envs.layers import Architecture
from metaqnn.errors import ConfigError
from metaqnn.search.agent import Trajectory, play
from metaqnn.search.agent_runs import AgentRun, AgentSettings, CachedReward, RunRecorder, finish_run

#: Population size P (Real et al.: 100 for 20,000 models; scaled to budgets of 50-500).
POPULATION = 20
#: Sample (tournament) size S (Real et al.: 25, i.e. P / 4).
SAMPLE = 5
#: Mutations tried for a child this run has not evaluated before a repeat is accepted.
MUTATION_TRIES = 20


@dataclass(frozen=True)
class Member:
    """One architecture of the population.

    Attributes:
        architecture: Its string (``str(Architecture)``).
        actions: The environment actions that build it, terminate included.
        choices: The number of legal actions at each of those steps (a position with one
            choice cannot be mutated).
        reward: Its reward.
    """

    architecture: str
    actions: tuple[int, ...]
    choices: tuple[int, ...]
    reward: float = float("nan")

    @property
    def mutable(self) -> tuple[int, ...]:
        """Positions where another legal action exists."""
        return tuple(t for t, n in enumerate(self.choices) if n > 1)


def _build(env: gym.Env, choose) -> tuple[Trajectory, tuple[int, ...]]:
    """Play one episode with ``choose(step, mask)``; the trajectory and the legal counts."""
    choices: list[int] = []

    def step_choice(obs: tuple[int, ...], mask: np.ndarray) -> int:
        choices.append(int(np.count_nonzero(mask)))
        return choose(len(choices) - 1, mask)

    return play(env, step_choice), tuple(choices)


def random_member(env: gym.Env, rng: np.random.Generator) -> Member:
    """A random architecture: every action uniform among the legal ones (reward unset)."""
    trajectory, choices = _build(env, lambda t, mask: int(rng.choice(np.flatnonzero(mask))))
    return Member(trajectory.architecture, trajectory.actions, choices)


def mutate(env: gym.Env, parent: Member, rng: np.random.Generator) -> Member | None:
    """A child of ``parent`` that differs from it at a uniform mutable position (see the module
    docstring); every action is legal, so the child is in the space. None if no position of the
    parent has another legal action.

    Raises:
        ConfigError: If the parent's prefix is not legal in ``env`` (it was not built there).
    """
    positions = parent.mutable
    if not positions:
        return None
    pos = positions[int(rng.integers(len(positions)))]
    old = parent.actions

    def choose(t: int, mask: np.ndarray) -> int:
        legal = np.flatnonzero(mask)
        if t < pos:
            if not mask[old[t]]:
                raise ConfigError(f"{parent.architecture} is not a legal path of this env")
            return int(old[t])
        if t == pos:
            return int(rng.choice(legal[legal != old[t]]))
        if t < len(old) and mask[old[t]]:
            return int(old[t])
        return int(rng.choice(legal))

    trajectory, choices = _build(env, choose)
    return Member(trajectory.architecture, trajectory.actions, choices)


def run_evolution(
    settings: AgentSettings,
    cache: CachedReward,
    seed: int,
    *,
    population: int = POPULATION,
    sample: int = SAMPLE,
    tries: int = MUTATION_TRIES,
) -> AgentRun:
    """Regularized evolution until the budget of unique architectures is spent or the step cap
    is reached (see the module docstring).

    Args:
        settings: Space, budget (the schedule's total) and step cap.
        cache: The shared reward.
        seed: Seeds the run's :class:`numpy.random.Generator`, its only randomness.
        population: Population size P.
        sample: Sample size S (at most P).
        tries: Mutations tried for a child not evaluated yet before a repeat is accepted.

    Raises:
        ConfigError: If ``population``, ``sample`` or ``tries`` is not a positive integer, or
            ``sample > population``.
    """
    if min(population, sample, tries) < 1 or sample > population:
        raise ConfigError(
            f"evolution needs 1 <= sample <= population and tries >= 1; got "
            f"population={population}, sample={sample}, tries={tries}"
        )
    start = time.perf_counter()
    rec = RunRecorder(cache, settings.budget)
    env = settings.env()
    rng = np.random.default_rng(seed)
    members: deque[Member] = deque(maxlen=population)  # appending drops the oldest
    episodes = steps = 0

    def evaluate(member: Member) -> Member:
        nonlocal episodes, steps
        episodes += 1
        steps += len(member.actions)
        reward = rec(Architecture.parse(member.architecture))
        return Member(member.architecture, member.actions, member.choices, reward)

    def running() -> bool:
        return not rec.exhausted and steps < settings.max_env_steps

    while running() and len(members) < population:
        members.append(evaluate(random_member(env, rng)))
    while running():
        picks = rng.choice(len(members), size=min(sample, len(members)), replace=False)
        parent = max((members[int(i)] for i in picks), key=lambda m: m.reward)  # first of ties
        child: Member | None = None
        for _ in range(tries):
            candidate = mutate(env, parent, rng)
            if candidate is None:  # nothing to change: a fresh random architecture instead
                candidate = random_member(env, rng)
            new = not rec.seen(candidate.architecture)
            child = evaluate(candidate)
            if new or not running():
                break
        if child is not None:
            members.append(child)
    return finish_run("evolution", seed, rec, start, episodes=episodes, illegal=0, steps=steps)
