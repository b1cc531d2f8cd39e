"""Agents: MetaQNN's tabular Q-learning against stable-baselines3 agents (unmasked and masked)
and random search, same environment, reward and budget of unique models.

Every agent plays ``CNNDesignEnv`` over the same search space and is scored by the same GTN
reward (accuracy on real validation images after a meta-trained teacher's synthetic steps).
The budget is MetaQNN's: a number of unique architectures per run (the epsilon schedule's
total); an architecture a run has already evaluated reuses its reward and does not count. The
rewards are computed once per architecture and shared by all runs (the reward is deterministic
per architecture; the run checks this on a sample with a freshly built reward). Q-learning and
random search draw only legal actions; the unmasked stable-baselines3 agents see the plain
``Discrete`` action space, so an illegal action ends their episode with the environment's
invalid-action reward (counted); ``maskable_ppo`` (sb3-contrib's MaskablePPO, PPO's settings)
reads the environment's action masks, beside the unmasked ``ppo``. Each (agent, seed) run is
one resumable unit. The report is built by :mod:`experiments.common.agents_report`.

    python -m experiments agents --data-root ../shared/data
    python -m experiments agents --quick
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from experiments.common.agents_report import (
    composition,
    plot_curves,
    report_markdown,
    result_row,
    stage_means,
    summarize,
)
from experiments.common.checks import at_least, distinct_seeds, known_choices
from experiments.common.teachers import with_config
from experiments.harness import REPO_ROOT, Context, Outcome, main
from metaqnn.rewards.spec import RewardSpec, build_reward
from metaqnn.search.baselines import AGENTS, AgentRun, AgentSettings, CachedReward, run_agent
from metaqnn.search.sb3_agents import SB3_AGENTS, algorithm_class
from metaqnn.search.schedule import EpsilonSchedule
from metaqnn.teacher.run import TeacherRun

NAME = "agents"


@dataclass(frozen=True)
class Config:
    """The comparison's settings (``experiments/configs/agents.toml``)."""

    dataset: str = "digits"
    """Dataset of the reward (and, through its preset, the search space)."""
    width_divisor: int = 1
    """Divide the space's conv filters and FC widths by this."""
    teacher_dir: str = "runs/gtn/digits-target"
    """GTN run folder (relative to the repository root); empty: a teacher under the scratch
    folder. Reused if meta-trained to ``teacher_outer_steps``, else trained or resumed."""
    teacher_settings: TeacherRun = field(default_factory=TeacherRun)
    """How the teacher is meta-trained when it must be (its dataset is this config's)."""
    teacher_outer_steps: int = 300
    """Outer steps of the teacher."""
    gtn_steps: int | None = None
    """Inner steps of the reward (None: all the teacher learned)."""
    score_size: int | None = None
    """Validation images scored by the reward (None: all)."""
    reward_seed: int = 0
    """Seed of the validation split, learner initialisation and synthetic batches."""
    agents: tuple[str, ...] = ("qlearning", "random", "ppo", "maskable_ppo", "dqn")
    """Agents to compare (keys of ``metaqnn.search.baselines.AGENTS``)."""
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """Seeds: every agent runs once per seed."""
    schedule: str = "0.037"
    """MetaQNN epsilon schedule (factor of the paper's or stages); its total is the budget of
    unique models of every agent."""
    replay: int = 100
    """Q-learning: replays after each model (MetaQNN: 100)."""
    alpha: float = 0.01
    """Q-learning: learning rate (MetaQNN: 0.01)."""
    max_env_steps: int = 20_000
    """Step cap of every run (a policy that only repeats itself never spends its budget)."""
    invalid_action_reward: float = -1.0
    """Reward of an illegal action (the environment's default)."""
    window: int = 10
    """Rolling-mean window, in unique models."""
    top: int = 10
    """The report's top-k mean."""
    verify: int = 20
    """Architectures re-scored with a freshly built reward to check determinism."""

    def __post_init__(self) -> None:
        known_choices("agents", self.agents, AGENTS)
        distinct_seeds(self.seeds)
        EpsilonSchedule.parse(self.schedule)
        at_least(self, ("window", "top", "max_env_steps", "teacher_outer_steps", "width_divisor"))


# ------------------------------------------------------------------ reward
def _teacher(config: Config, ctx: Context) -> Path:
    run_dir = Path(config.teacher_dir) if config.teacher_dir else ctx.work / "teacher"
    if not run_dir.is_absolute():
        run_dir = REPO_ROOT / run_dir
    settings = with_config(config.teacher_settings, "teacher_settings", dataset=config.dataset)
    return ctx.gtn(run_dir, settings, config.teacher_outer_steps)


def _reward_spec(config: Config, ctx: Context, teacher: Path) -> RewardSpec:
    return RewardSpec(
        name="gtn",
        dataset=config.dataset,
        data_root=ctx.data_root,
        score_size=config.score_size,
        seed=config.reward_seed,
        device=str(ctx.device),
        gtn_checkpoint=str(teacher),
        gtn_steps=config.gtn_steps,
    )


def _settings(config: Config, ctx: Context, spec: RewardSpec) -> AgentSettings:
    from metaqnn.search.loop import SearchConfig

    space = SearchConfig(reward=spec, width_divisor=config.width_divisor).search_space()
    return AgentSettings(
        space=space,
        schedule=config.schedule,
        replay=config.replay,
        alpha=config.alpha,
        max_env_steps=config.max_env_steps,
        invalid_action_reward=config.invalid_action_reward,
        device=str(ctx.device),
    )


def _verify(config: Config, spec: RewardSpec, cache: CachedReward) -> dict[str, Any]:
    """Re-score some cached architectures, in reverse order, with a freshly built reward."""
    archs = list(cache.results)[-config.verify :][::-1] if config.verify else []
    fresh = build_reward(spec)
    diffs = [abs(fresh(_parse(a)) - cache.results[a].reward) for a in archs]
    return {"checked": len(archs), "identical": sum(d == 0 for d in diffs),
            "max_abs_diff": max(diffs, default=0.0)}  # fmt: skip


def _parse(text: str):
    from envs.layers import Architecture

    return Architecture.parse(text)


# ------------------------------------------------------------------ tensorboard
def _log_tb(ctx: Context, run: AgentRun, window: int) -> None:
    best, roll = run.best_so_far(), run.rolling_mean(window)
    for i, (b, m) in enumerate(zip(best, roll, strict=True)):
        ctx.tb.add_scalar(f"seed{run.seed}/{run.agent}/best_so_far", b, i + 1)
        ctx.tb.add_scalar(f"seed{run.seed}/{run.agent}/rolling_mean", m, i + 1)


# ------------------------------------------------------------------ run
def run(config: Config, ctx: Context) -> Outcome:
    """Run every (agent, seed) once and compare them."""
    for agent in config.agents:  # a missing sb3-contrib fails now, not after the teacher
        if agent in SB3_AGENTS:
            algorithm_class(agent)
    teacher = _teacher(config, ctx)
    spec = _reward_spec(config, ctx, teacher)
    settings = _settings(config, ctx, spec)
    schedule = EpsilonSchedule.parse(config.schedule)
    budget = schedule.total
    cache = CachedReward(None, ctx.work / "rewards.json")
    reward_built = False

    def unit(agent: str, seed: int) -> dict[str, Any]:
        nonlocal reward_built
        if not reward_built:
            cache.reward = build_reward(spec)
            reward_built = True
        result = run_agent(agent, settings, cache, seed)
        cache.save()
        print(f"{agent} seed {seed}: {len(result.rewards)} unique, best "
              f"{max(result.rewards, default=float('nan')):.4f}, {result.episodes} episodes "
              f"({result.repeats} repeats, {result.illegal} illegal), {result.wall_s:.1f} s",
              flush=True)  # fmt: skip
        return result.to_dict()

    by_agent: dict[str, list[AgentRun]] = {a: [] for a in config.agents}
    for seed in config.seeds:
        for agent in config.agents:
            run_ = AgentRun.from_dict(
                ctx.memo(f"{agent}/{seed}", lambda a=agent, s=seed: unit(a, s))
            )
            by_agent[agent].append(run_)
            _log_tb(ctx, run_, config.window)
    if not reward_built:
        cache.reward = build_reward(spec)
    check = _verify(config, spec, cache)
    summaries = {a: summarize(runs, config) for a, runs in by_agent.items()}
    figure = ctx.figure("agents_curves.png")
    plot_curves(by_agent, config, budget, figure)
    cost = [r.wall_time_s for r in cache.results.values()]
    return Outcome(
        markdown=report_markdown(
            config, settings, by_agent, summaries, schedule, check, cache, figure
        ),
        summary={
            "budget": budget,
            "agents": summaries,
            "stage_means": {a: stage_means(r, schedule) for a, r in by_agent.items()},
            "composition": {a: composition(r, schedule.stages[0][1]) for a, r in by_agent.items()},
            "determinism": check,
            "unique_architectures_all_runs": len(cache),
            "reward_s_per_model_mean": float(np.mean(cost)) if cost else 0.0,
            "reward_s_total": float(np.sum(cost)),
        },
        rows=[result_row(r, config.top) for runs in by_agent.values() for r in runs],
    )


if __name__ == "__main__":
    import sys

    sys.exit(main(NAME, Config, run, doc=__doc__))
