"""Agents: MetaQNN's tabular Q-learning against stable-baselines3 agents and random search,
same environment, reward and budget of unique models.

Every agent plays ``CNNDesignEnv`` over the same search space and is scored by the same GTN
reward (accuracy on real validation images after a meta-trained teacher's synthetic steps).
The budget is MetaQNN's: a number of unique architectures per run (the epsilon schedule's
total); an architecture a run has already evaluated reuses its reward and does not count. The
rewards are computed once per architecture and shared by all runs (the reward is deterministic
per architecture; the run checks this on a sample with a freshly built reward). Q-learning and
random search draw only legal actions; the stable-baselines3 agents see the plain ``Discrete``
action space, so an illegal action ends their episode with the environment's invalid-action
reward (counted). Each (agent, seed) run is one resumable unit.

    python -m experiments agents --data-root ../shared/data
    python -m experiments agents --quick
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from experiments.harness import REPO_ROOT, Context, Outcome, main
from metaqnn.errors import ConfigError
from metaqnn.markdown import markdown_table
from metaqnn.rewards.spec import RewardSpec, build_reward
from metaqnn.search.baselines import (
    AGENTS,
    SB3_AGENTS,
    AgentRun,
    AgentSettings,
    CachedReward,
    run_agent,
)
from metaqnn.search.schedule import EpsilonSchedule

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
    teacher_args: tuple[str, ...] = ()
    """``metaqnn gtn train`` arguments used when the teacher must be trained."""
    teacher_outer_steps: int = 300
    """Outer steps of the teacher."""
    gtn_steps: int | None = None
    """Inner steps of the reward (None: all the teacher learned)."""
    score_size: int | None = None
    """Validation images scored by the reward (None: all)."""
    reward_seed: int = 0
    """Seed of the validation split, learner initialisation and synthetic batches."""
    agents: tuple[str, ...] = ("qlearning", "random", "ppo", "dqn")
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
        unknown = [a for a in self.agents if a not in AGENTS]
        if unknown or not self.agents:
            raise ConfigError(f"agents {list(self.agents)!r}: unknown {unknown}; "
                              f"choose from {sorted(AGENTS)}")  # fmt: skip
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds {list(self.seeds)!r} must be distinct and not empty")
        EpsilonSchedule.parse(self.schedule)
        for key in ("window", "top", "max_env_steps", "teacher_outer_steps", "width_divisor"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}={getattr(self, key)!r} must be >= 1")


# ------------------------------------------------------------------ reward
def _teacher(config: Config, ctx: Context) -> Path:
    run_dir = Path(config.teacher_dir) if config.teacher_dir else ctx.work / "teacher"
    if not run_dir.is_absolute():
        run_dir = REPO_ROOT / run_dir
    args = list(config.teacher_args)
    if "--dataset" not in args:
        args = ["--dataset", config.dataset, *args]
    return ctx.gtn(run_dir, args, config.teacher_outer_steps)


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


# ------------------------------------------------------------------ summaries
def _stat(values: list[float]) -> str:
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0 or np.isnan(v).all():
        return "-"
    return f"{np.nanmean(v):.3f} ± {np.nanstd(v):.3f}" if len(v) > 1 else f"{v[0]:.3f}"


def _summary(runs: list[AgentRun], config: Config) -> dict[str, Any]:
    return {
        "runs": len(runs),
        "unique_mean": float(np.mean([len(r.rewards) for r in runs])),
        "best_mean": float(np.mean([max(r.rewards, default=np.nan) for r in runs])),
        "best_std": float(np.std([max(r.rewards, default=np.nan) for r in runs])),
        "top_mean": float(np.mean([r.top_mean(config.top) for r in runs])),
        "top_std": float(np.std([r.top_mean(config.top) for r in runs])),
        "mean_reward": float(np.mean([np.mean(r.rewards) for r in runs if r.rewards])),
        "final_rolling_mean": float(
            np.mean([r.rolling_mean(config.window)[-1] for r in runs if r.rewards])
        ),
        "episodes": int(sum(r.episodes for r in runs)),
        "repeats": int(sum(r.repeats for r in runs)),
        "illegal": int(sum(r.illegal for r in runs)),
        "env_steps": int(sum(r.env_steps for r in runs)),
        "wall_s": float(sum(r.wall_s for r in runs)),
        "reward_s": float(sum(r.reward_s for r in runs)),
        "stopped_at_cap": int(sum(r.stopped != "budget" for r in runs)),
    }


def _stage_means(runs: list[AgentRun], schedule: EpsilonSchedule) -> list[float]:
    """Mean reward of the unique models in each schedule stage's index range (all agents:
    the i-th unique model of a run falls in the stage Q-learning would sample it at)."""
    out, lo = [], 0
    for _, n in schedule.stages:
        vals = [v for r in runs for v in r.rewards[lo : lo + n]]
        out.append(float(np.mean(vals)) if vals else float("nan"))
        lo += n
    return out


def _composition(runs: list[AgentRun], first: int) -> dict[str, float]:
    """Mean layer count (softmax included), share with global average pooling and mean reward
    of the first ``first`` unique models of each run and of the rest."""
    out: dict[str, float] = {}
    for part, pick in (("first", slice(0, first)), ("rest", slice(first, None))):
        archs = [a for r in runs for a in r.architectures[pick]]
        rewards = [v for r in runs for v in r.rewards[pick]]
        out[f"{part}_layers"] = float(np.mean([len(a.split(", ")) for a in archs]))
        out[f"{part}_gap_share"] = float(np.mean(["GAP" in a for a in archs]))
        out[f"{part}_reward"] = float(np.mean(rewards))
    return out


def _curves(runs: list[AgentRun], budget: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(seeds, budget) best-so-far and rolling mean, NaN past a run's last unique model."""
    best = np.full((len(runs), budget), np.nan)
    roll = np.full((len(runs), budget), np.nan)
    for i, r in enumerate(runs):
        n = len(r.rewards)
        if n:
            best[i, :n] = r.best_so_far()
            roll[i, :n] = r.rolling_mean(window)
    return best, roll


def _row(run: AgentRun, top: int) -> dict[str, Any]:
    """A run for ``results.json``: its counts, rewards in order (4 decimals) and its ``top``
    best architectures (the full record stays in the scratch folder's memo)."""
    row = run.to_dict()
    order = np.argsort(run.rewards, kind="stable")[::-1][:top]
    row["best_architectures"] = [[run.architectures[i], run.rewards[i]] for i in order]
    row["rewards"] = [round(v, 4) for v in run.rewards]
    del row["architectures"]
    return row


def _figure(by_agent: dict[str, list[AgentRun]], config: Config, budget: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    x = np.arange(1, budget + 1)
    for name, runs in by_agent.items():
        best, roll = _curves(runs, budget, config.window)
        with np.errstate(all="ignore"):
            line = axes[0].plot(x, np.nanmedian(best, 0), label=name)[0]
            axes[0].fill_between(x, np.nanmin(best, 0), np.nanmax(best, 0),
                                 color=line.get_color(), alpha=0.15)  # fmt: skip
            mean, std = np.nanmean(roll, 0), np.nanstd(roll, 0)
            axes[1].plot(x, mean, label=name, color=line.get_color())
            axes[1].fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.15)
    title = f"best so far (median, min-max over {len(config.seeds)} seeds; zoomed)"
    axes[0].set(xlabel="unique models evaluated", ylabel="best reward so far", title=title)
    axes[1].set(xlabel="unique models evaluated", ylabel=f"mean reward, last {config.window}",
                title="rolling mean (mean ± std over seeds)")  # fmt: skip
    tops = [np.nanmedian(_curves(r, budget, config.window)[0], 0) for r in by_agent.values()]
    with np.errstate(all="ignore"):  # zoom on the top: the first few models span 0.1-0.9
        low = np.nanmin([t[min(4, budget - 1) :].min() for t in tops])
        high = np.nanmax([t.max() for t in tops])
    if np.isfinite(low) and np.isfinite(high):
        pad = max(0.005, 0.1 * (high - low))
        axes[0].set_ylim(low - pad, high + pad)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _log_tb(ctx: Context, run: AgentRun, window: int) -> None:
    best, roll = run.best_so_far(), run.rolling_mean(window)
    for i, (b, m) in enumerate(zip(best, roll, strict=True)):
        ctx.tb.add_scalar(f"seed{run.seed}/{run.agent}/best_so_far", b, i + 1)
        ctx.tb.add_scalar(f"seed{run.seed}/{run.agent}/rolling_mean", m, i + 1)


# ------------------------------------------------------------------ run
def run(config: Config, ctx: Context) -> Outcome:
    """Run every (agent, seed) once and compare them."""
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
    summaries = {a: _summary(runs, config) for a, runs in by_agent.items()}
    figure = ctx.figure("agents_curves.png")
    _figure(by_agent, config, budget, figure)
    cost = [r.wall_time_s for r in cache.results.values()]
    return Outcome(
        markdown=_markdown(config, settings, by_agent, summaries, schedule, check, cache, figure),
        summary={
            "budget": budget,
            "agents": summaries,
            "stage_means": {a: _stage_means(r, schedule) for a, r in by_agent.items()},
            "composition": {a: _composition(r, schedule.stages[0][1]) for a, r in by_agent.items()},
            "determinism": check,
            "unique_architectures_all_runs": len(cache),
            "reward_s_per_model_mean": float(np.mean(cost)) if cost else 0.0,
            "reward_s_total": float(np.sum(cost)),
        },
        rows=[_row(r, config.top) for runs in by_agent.values() for r in runs],
    )


def _markdown(
    config: Config,
    settings: AgentSettings,
    by_agent: dict[str, list[AgentRun]],
    summaries: dict[str, dict[str, Any]],
    schedule: EpsilonSchedule,
    check: dict[str, Any],
    cache: CachedReward,
    figure: Path,
) -> str:
    seeds = len(config.seeds)
    k = config.top
    rows = []
    for name, s in summaries.items():
        runs = by_agent[name]
        rows.append([
            name,
            f"{s['unique_mean']:.0f}",
            _stat([max(r.rewards, default=np.nan) for r in runs]),
            _stat([r.top_mean(k) for r in runs]),
            _stat([float(np.mean(r.rewards)) for r in runs if r.rewards]),
            _stat([r.rolling_mean(config.window)[-1] for r in runs if r.rewards]),
            f"{s['episodes']}",
            f"{s['repeats']}",
            f"{s['illegal']} ({s['illegal'] / max(1, s['episodes']):.0%})",
            f"{s['env_steps']}",
            f"{s['wall_s']:.0f} / {s['wall_s'] - s['reward_s']:.0f}",
            f"{s['stopped_at_cap']}",
        ])  # fmt: skip
    table = markdown_table(
        ["agent", "unique models", "best", f"top-{k} mean", "mean, all models",
         f"mean, last {config.window}", "episodes", "repeats (free)", "illegal episodes",
         "env steps", "wall s (all / agent only)", "runs stopped at step cap"],
        rows,
    )  # fmt: skip
    stage_header = ["agent"] + [f"{eps:g} ({n})" for eps, n in schedule.stages]
    stage_header.append("last - first stage")
    stage_rows = []
    for name, runs in by_agent.items():
        means = _stage_means(runs, schedule)
        stage_rows.append([name, *(f"{v:.3f}" for v in means), f"{means[-1] - means[0]:+.3f}"])
    first = schedule.stages[0][1]
    comp_rows = []
    for name, runs in by_agent.items():
        c = _composition(runs, first)
        comp_rows.append(
            [
                name,
                f"{c['first_layers']:.2f} -> {c['rest_layers']:.2f}",
                f"{c['first_gap_share']:.0%} -> {c['rest_gap_share']:.0%}",
                f"{c['first_reward']:.3f} -> {c['rest_reward']:.3f}",
            ]
        )
    best_rows = []
    for name, runs in by_agent.items():
        found = [(v, a) for r in runs for a, v in zip(r.architectures, r.rewards, strict=True)]
        if found:
            v, a = max(found, key=lambda t: t[0])
            best_rows.append([name, f"{v:.4f}", f"`{a}`"])
    cost = [r.wall_time_s for r in cache.results.values()]
    q_delta = "not run"
    if "qlearning" in by_agent:
        means = _stage_means(by_agent["qlearning"], schedule)
        q_delta = f"{100 * (means[-1] - means[0]):+.1f} points"
    sb3 = [a for a in config.agents if a in SB3_AGENTS]
    sb3_lines = "\n".join(
        f"- `{a}`: stable-baselines3 {SB3_AGENTS[a].algorithm}, MlpPolicy, "
        + ", ".join(f"{key}={val}" for key, val in SB3_AGENTS[a].kwargs.items())
        + (f", epsilon 1 -> 0.05 over {SB3_AGENTS[a].exploration_steps} steps"
           if SB3_AGENTS[a].exploration_steps else "")
        for a in sb3
    )  # fmt: skip
    return f"""
Setting: the `{settings.space.name}` search space (depth limit {settings.space.max_depth},
{len(settings.space.actions)} actions, widths divided by {config.width_divisor}); reward =
validation accuracy after the GTN teacher's synthetic steps (`{config.teacher_dir or "scratch"}`,
{config.teacher_outer_steps} outer steps); budget = **{schedule.total} unique models per run**
(MetaQNN's epsilon schedule `{config.schedule}` = `{schedule.to_spec()}`), the same for every
agent; {seeds} seeds per agent; step cap {config.max_env_steps} environment steps per run.
Q-learning: alpha {config.alpha}, gamma 1, Q0 0.5, {config.replay} replays per model.
Random search: every layer uniform among the legal actions. SB3 agents see `Discrete(n)`
without the mask: an illegal action ends the episode with reward
{config.invalid_action_reward} and builds nothing.
{sb3_lines}

Rewards were computed once per architecture and shared by all runs:
{len(cache)} distinct architectures over all runs, {np.mean(cost) if cost else 0:.2f} s per
reward on average ({np.sum(cost):.0f} s in all). Determinism: {check["identical"]} of
{check["checked"]} cached rewards reproduced exactly by a freshly built reward, in reverse order
(largest difference {check["max_abs_diff"]:.4g}).

{table}

(best, top-{k}, means: mean ± std over seeds; episodes, repeats, illegal episodes, steps and
wall times: summed over seeds; "agent only" excludes time spent computing rewards, which
depends on which run met an architecture first.)

Mean reward of the i-th unique models, grouped by the epsilon stage Q-learning samples them at
(stage epsilon and model count; every agent's models in the same index ranges):

{markdown_table(stage_header, stage_rows)}

What the agents build, first {first} unique models of each run -> the other
{schedule.total - first} (Q-learning's epsilon-1.0 stage -> the rest):

{markdown_table(["agent", "layers (SM included)", "share with GAP", "mean reward"], comp_rows)}

Best architecture of each agent over all its seeds (first found among equals):

{markdown_table(["agent", "reward", "architecture"], best_rows)}

Reference (`../shared/RESEARCH.md`, `experiments/RESULTS.md`): MetaQNN trained 2,700 models
per search (20 epochs of real data each) and reports that the mean accuracy of the sampled
models rises as epsilon falls (its Fig. 3); this project's MNIST search with the GTN reward
(138 models, widths / 16) rose 17.2 points from epsilon 1.0 to 0.1. Here Q-learning's last
stage is {q_delta} against its first; {seeds} seeds of {schedule.total} models
({schedule.total} / 2,700 of MetaQNN's models per search).

![best so far and rolling mean]({figure.name})
"""


if __name__ == "__main__":
    import sys

    sys.exit(main(NAME, Config, run, doc=__doc__))
