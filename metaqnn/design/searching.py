"""The search phase of a design run, usable on its own: a reward whose cost is measured at
the search width, an agent whose schedule is sized to a wall-clock budget from that cost, and
a resumable :class:`~metaqnn.search.loop.Search`.

Agents are epsilon schedules of MetaQNN's tabular Q-learner (:data:`AGENTS`): ``qlearning`` is
MetaQNN's schedule scaled to the models that fit; ``random`` keeps epsilon at 1, which is
random search (every layer drawn uniformly among the legal actions) through the same machinery,
so both record, resume and time the same way.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from envs.cnn_design import CNNDesignEnv, zero_reward
from envs.layers import Architecture
from metaqnn.errors import ConfigError
from metaqnn.rewards.spec import RewardSpec, build_reward
from metaqnn.search.cost import cost_masked, sample
from metaqnn.search.loop import Search, SearchConfig
from metaqnn.search.schedule import PAPER_STAGES, EpsilonSchedule
from metaqnn.search.workers import InlineBackend

#: Distinct sampled architectures timed, at least, to measure a reward's cost before the
#: search; more are timed while the probing has taken less than :data:`PROBE_SHARE` of the
#: search's time, up to :data:`MAX_PROBES`. (Three draws told a Fashion-MNIST run 0.47 s per
#: model and an MNIST run 0.53 s; their searches then took 1.3-1.6 s and 1.3 s. The sampler's
#: draws are shallower than the search's distinct models, 5.9 layers against 7.2 on MNIST;
#: more probes, each timed once, narrow that gap but need not close it.)
COST_PROBES = 3
PROBE_SHARE = 0.01
MAX_PROBES = 40


def _qlearning(models: int) -> str:
    """MetaQNN's stages in proportion, ``models`` in all (at least one per stage)."""
    paper = sum(n for _, n in PAPER_STAGES)
    counts = [max(1, math.floor(n * models / paper)) for _, n in PAPER_STAGES]
    counts[0] += max(0, models - sum(counts))  # the rounding goes to the random stage
    return EpsilonSchedule(
        tuple((eps, n) for (eps, _), n in zip(PAPER_STAGES, counts, strict=True))
    ).to_spec()


def _random(models: int) -> str:
    return f"1.0:{models}"


#: Agent name -> the epsilon schedule (stages spec) of a search of that many models.
AGENTS: dict[str, Callable[[int], str]] = {"qlearning": _qlearning, "random": _random}


def check_agent(name: str) -> None:
    """Raise :class:`ConfigError` naming ``name`` unless it is a key of :data:`AGENTS`."""
    if name not in AGENTS:
        raise ConfigError(f"unknown search agent {name!r}; choose from {', '.join(AGENTS)}")


def sized_search(spec: RewardSpec, run_dir: Path, *, agent: str, seconds: float,
                 width_divisor: int, seed: int, max_flops: float | None = None,
                 flops_width_divisor: int = 1,
                 space: str | None = None) -> tuple[Search, dict[str, Any]]:  # fmt: skip
    """A new search in ``run_dir`` whose schedule fits ``seconds``.

    The reward is built, timed on distinct random architectures of the space at widths /
    ``width_divisor`` (within the cost cap, if any; :func:`probe_cost`; that time counts
    against ``seconds``), and the agent's schedule is sized to 90 % of what is left.

    Args:
        max_flops: The search's cost cap (:attr:`SearchConfig.max_flops`; None: none),
            counted at widths / ``flops_width_divisor``.
        space: The search-space preset (None: the dataset's).

    Returns:
        The search (not yet run) and what was measured: ``seconds_per_model``,
        ``probes``, ``planned_models``, ``schedule``, ``width_divisor``, ``agent``, ``reward`` (and
        ``max_flops`` and ``flops_width_divisor`` with a cap).

    Raises:
        ConfigError: For an unknown agent or reward, or a reward that cannot be built.
    """
    check_agent(agent)
    start = time.perf_counter()
    config = SearchConfig(reward=spec, width_divisor=width_divisor, seed=seed, space=space,
                          max_flops=max_flops, flops_width_divisor=flops_width_divisor)  # fmt: skip
    reward = build_reward(spec)
    scaled = config.search_space()
    env = cost_masked(CNNDesignEnv(scaled, reward_fn=zero_reward), config)
    rng = np.random.default_rng(seed + 1)
    # without a cap, as space.sample draws them
    per_model, probes = probe_cost(
        reward.evaluate,
        lambda: scaled.sample(rng) if max_flops is None else sample(env, rng),
        PROBE_SHARE * seconds,
    )
    left = seconds - (time.perf_counter() - start)
    planned = max(10, math.floor(0.9 * left / max(per_model, 1e-6)))
    schedule = AGENTS[agent](planned)
    info = {"seconds_per_model": per_model, "probes": probes, "planned_models": planned,
            "schedule": schedule, "width_divisor": width_divisor, "agent": agent,
            "reward": spec.name}  # fmt: skip
    if max_flops is not None:
        info |= {"max_flops": max_flops, "flops_width_divisor": flops_width_divisor}
    config = dataclasses.replace(config, schedule=schedule)
    return Search.create(config, run_dir, backend=InlineBackend(reward=reward)), info


def probe_cost(evaluate: Callable[[Architecture], Any], draw: Callable[[], Architecture],
               seconds: float) -> tuple[float, int]:  # fmt: skip
    """Mean seconds of ``evaluate`` over distinct architectures from ``draw``, and how many.

    At least :data:`COST_PROBES` are timed, then more until ``seconds`` have passed or
    :data:`MAX_PROBES` are timed. A draw met before is not timed again: the search trains
    each architecture once, so repeats of the few smallest ones would pull the mean down.
    """
    seen: set[str] = set()
    start = time.perf_counter()
    spent = 0.0
    for _ in range(50 * MAX_PROBES):  # a space of a few architectures ends the draws
        arch = draw()
        key = str(arch)
        if key in seen:
            continue
        seen.add(key)
        evaluate(arch)
        spent = time.perf_counter() - start
        if len(seen) >= MAX_PROBES or (len(seen) >= COST_PROBES and spent >= seconds):
            break
    return spent / max(len(seen), 1), len(seen)


def run_sized(search: Search, seconds: float, agent: str, *, progress: bool,
              slices: int = 8) -> None:  # fmt: skip
    """Run ``search`` for ``seconds``, re-sizing the agent's schedule to the measured cost.

    The time is cut into ``slices``; after each, the seconds per new model measured so far in
    this call say how many more models the time left can take, and the agent's schedule is
    rebuilt for that total (:meth:`~metaqnn.search.loop.Search.reschedule`). A few probes
    before the search cannot tell what a model costs once the agent prefers some
    architectures; without this a Q-learning schedule sized from them may never leave its
    random stage, or end early.
    """
    check_agent(agent)
    start, first = time.perf_counter(), search.done
    while True:
        spent = time.perf_counter() - start
        left = seconds - spent
        if left <= 0:
            return
        new = search.done - first
        if new > 0:
            more = math.floor(0.95 * left / (spent / new))
            total = search.done + max(1, more)
            if abs(total - search.schedule.total) > 0.02 * total:
                search.reschedule(AGENTS[agent](total))
                print(f"{search.done} models at {spent / new:.2f} s each; {agent} schedule "
                      f"re-sized to {search.schedule.total} models", flush=True)  # fmt: skip
            elif search.finished:
                return  # the schedule is done and the time left fits no more than it
        elif search.finished:
            return
        search.run(time_limit_s=max(left / slices, min(left, 1.0)), progress=progress,
                   announce_limit=False)  # fmt: skip
        slices = max(1, slices - 1)
