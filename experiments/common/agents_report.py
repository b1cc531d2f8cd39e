"""The agents experiment's report (:mod:`experiments.agents`): per-agent summaries over seeds,
rewards by epsilon stage, what the agents build, the curves figure and the markdown text."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from metaqnn.markdown import markdown_table
from metaqnn.search.baselines import AgentRun, AgentSettings, CachedReward
from metaqnn.search.sb3_agents import SB3_AGENTS
from metaqnn.search.schedule import EpsilonSchedule

if TYPE_CHECKING:
    from experiments.agents import Config


# ------------------------------------------------------------------ summaries
def _stat(values: list[float]) -> str:
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0 or np.isnan(v).all():
        return "-"
    return f"{np.nanmean(v):.3f} ± {np.nanstd(v):.3f}" if len(v) > 1 else f"{v[0]:.3f}"


def summarize(runs: list[AgentRun], config: Config) -> dict[str, Any]:
    """One agent's runs in numbers: unique models, best and top-k rewards (mean and std over
    seeds), mean rewards, and the episode, repeat, illegal-episode and step counts and times
    summed over seeds."""
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


def stage_means(runs: list[AgentRun], schedule: EpsilonSchedule) -> list[float]:
    """Mean reward of the unique models in each schedule stage's index range (all agents:
    the i-th unique model of a run falls in the stage Q-learning would sample it at)."""
    out, lo = [], 0
    for _, n in schedule.stages:
        vals = [v for r in runs for v in r.rewards[lo : lo + n]]
        out.append(float(np.mean(vals)) if vals else float("nan"))
        lo += n
    return out


def composition(runs: list[AgentRun], first: int) -> dict[str, float]:
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


def curves(runs: list[AgentRun], budget: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(seeds, budget) best-so-far and rolling mean, NaN past a run's last unique model."""
    best = np.full((len(runs), budget), np.nan)
    roll = np.full((len(runs), budget), np.nan)
    for i, r in enumerate(runs):
        n = len(r.rewards)
        if n:
            best[i, :n] = r.best_so_far()
            roll[i, :n] = r.rolling_mean(window)
    return best, roll


def result_row(run: AgentRun, top: int) -> dict[str, Any]:
    """A run for ``results.json``: its counts, rewards in order (4 decimals) and its ``top``
    best architectures (the full record stays in the scratch folder's memo)."""
    row = run.to_dict()
    order = np.argsort(run.rewards, kind="stable")[::-1][:top]
    row["best_architectures"] = [[run.architectures[i], run.rewards[i]] for i in order]
    row["rewards"] = [round(v, 4) for v in run.rewards]
    del row["architectures"]
    return row


def plot_curves(
    by_agent: dict[str, list[AgentRun]], config: Config, budget: int, path: Path
) -> None:
    """Save the best-so-far (left) and rolling-mean (right) curves of every agent to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    x = np.arange(1, budget + 1)
    for name, runs in by_agent.items():
        best, roll = curves(runs, budget, config.window)
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
    tops = [np.nanmedian(curves(r, budget, config.window)[0], 0) for r in by_agent.values()]
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


# ------------------------------------------------------------------ markdown
def sb3_line(name: str) -> str:
    """The report's line on the SB3 agent ``name``: library, algorithm, masking, settings."""
    spec = SB3_AGENTS[name]
    library = "sb3-contrib" if spec.package == "sb3_contrib" else "stable-baselines3"
    masked = " (reads the action masks)" if spec.masked else ""
    kwargs = ", ".join(f"{key}={val}" for key, val in spec.kwargs.items())
    explore = (f", epsilon 1 -> 0.05 over {spec.exploration_steps} steps"
               if spec.exploration_steps else "")  # fmt: skip
    return f"- `{name}`: {library} {spec.algorithm}{masked}, MlpPolicy, {kwargs}{explore}"


def report_markdown(
    config: Config,
    settings: AgentSettings,
    by_agent: dict[str, list[AgentRun]],
    summaries: dict[str, dict[str, Any]],
    schedule: EpsilonSchedule,
    check: dict[str, Any],
    cache: CachedReward,
    figure: Path,
) -> str:
    """The report: setting, results table, stage means, composition, best architectures."""
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
        means = stage_means(runs, schedule)
        stage_rows.append([name, *(f"{v:.3f}" for v in means), f"{means[-1] - means[0]:+.3f}"])
    first = schedule.stages[0][1]
    comp_rows = []
    for name, runs in by_agent.items():
        c = composition(runs, first)
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
        means = stage_means(by_agent["qlearning"], schedule)
        q_delta = f"{100 * (means[-1] - means[0]):+.1f} points"
    sb3_lines = "\n".join(sb3_line(a) for a in config.agents if a in SB3_AGENTS)
    return f"""
Setting: the `{settings.space.name}` search space (depth limit {settings.space.max_depth},
{len(settings.space.actions)} actions, widths divided by {config.width_divisor}); reward =
validation accuracy after the GTN teacher's synthetic steps (`{config.teacher_dir or "scratch"}`,
{config.teacher_outer_steps} outer steps); budget = **{schedule.total} unique models per run**
(MetaQNN's epsilon schedule `{config.schedule}` = `{schedule.to_spec()}`), the same for every
agent; {seeds} seeds per agent; step cap {config.max_env_steps} environment steps per run.
Q-learning: alpha {config.alpha}, gamma 1, Q0 0.5, {config.replay} replays per model.
Random search: every layer uniform among the legal actions. Unmasked SB3 agents see
`Discrete(n)` without the mask: an illegal action ends the episode with reward
{config.invalid_action_reward} and builds nothing. Masked ones (sb3-contrib's MaskablePPO)
read the environment's action masks and take only legal actions.
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
