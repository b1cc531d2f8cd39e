"""Agents on a tabular benchmark: regret against architectures evaluated and against simulated
training time, many seeds per agent, and the exact rank fidelity of the table's cheap rewards.

Every agent of ``metaqnn.search.baselines.AGENTS`` named in the config plays the same
``CNNDesignEnv`` over the table's space; a finished architecture's reward is its recorded
validation accuracy (``table_seed``: the mean over the table's training seeds, or one seed),
looked up in microseconds, so a run of hundreds of architectures costs seconds. The budget is
MetaQNN's: unique architectures per run (repeats reuse their reward and do not count), and
MetaQNN's epsilon schedule is scaled to it for the Q-learner. Regret is the table's best
validation accuracy minus the best found so far; the simulated clock adds each new
architecture's recorded training seconds (NAS-Bench-201's "simulated time"). The exact
fidelity compares, over every architecture of the table, the GTN reward, the other training
seed (a real-data reward of the same cost) and zero-training proxies (parameters, FLOPs) with
the table's validation accuracy.

    python -m experiments agents_tabular --out experiments/results/agents_tabular  # mnist-bench
    python -m experiments agents_tabular --set table=TABLE.npz  # another table file
    python -m experiments agents_tabular --quick   # builds a tiny real table on digits first

Writes ``results.md``, ``results.json``, ``summary.json`` (the issue's keys) and the figures
``regret_models.png`` and ``regret_time.png``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from envs.bench import BenchTable, load_table, shipped_tables, table_path
from envs.space import get_space
from experiments.common.checks import distinct_seeds, known_choices
from experiments.common.tabular_report import (
    fidelity_rows,
    plot_regret,
    regret_curve,
    regret_summary,
    report_markdown,
    time_curve,
)
from experiments.harness import REPO_ROOT, Context, Outcome, main
from metaqnn.errors import ConfigError
from metaqnn.runinfo import run_metadata
from metaqnn.search.baselines import AGENTS, AgentRun, AgentSettings, CachedReward, run_agent
from metaqnn.search.schedule import PAPER_STAGES

NAME = "agents_tabular"


@dataclass(frozen=True)
class Config:
    """The comparison's settings (``experiments/configs/agents_tabular.toml``)."""

    table: str = ""
    """A shipped table's name (``mnist-bench``) or a table file (relative to the repository
    root); empty: a tiny one is built in the
    scratch folder from ``build_space`` (a preset name), ``build_depth``, ``build_recipe``,
    ``build_dataset`` and ``build_seeds``, with the shipped ``build_teacher``."""
    build_space: str = "digits"
    """Preset of the built table's space."""
    build_depth: int = 2
    """Its maximum depth."""
    build_recipe: str = "smoke"
    """Its recipe (``metaqnn.tabular.recipe.BENCH_RECIPES``)."""
    build_dataset: str = "digits"
    """Its dataset."""
    build_seeds: tuple[int, ...] = (0, 1)
    """Its training seeds."""
    build_teacher: str = "digits"
    """The shipped teacher of its GTN column."""
    table_seed: str = "mean"
    """``mean`` (over the table's seeds) or one of them (as a string, e.g. ``"0"``)."""
    agents: tuple[str, ...] = ("random", "qlearning", "evolution", "tpe", "maskable_ppo", "dqn")
    """Agents (keys of ``AGENTS``)."""
    seeds: tuple[int, ...] = tuple(range(20))
    """Seeds: every agent runs once per seed."""
    budget: int = 500
    """Unique architectures per run."""
    checkpoints: tuple[int, ...] = (50, 100, 200, 500)
    """Budgets at which the table reports regret."""
    replay: int = 100
    """Q-learning: replays after each model (MetaQNN: 100)."""
    alpha: float = 0.01
    """Q-learning: learning rate (MetaQNN: 0.01)."""
    max_env_steps: int = 20_000
    """Step cap of every run."""
    top_k: tuple[int, ...] = (10, 50)
    """Top-k precisions of the fidelity table."""

    def __post_init__(self) -> None:
        known_choices("agents", self.agents, AGENTS)
        distinct_seeds(self.seeds)
        if self.budget < 1 or any(c < 1 or c > self.budget for c in self.checkpoints):
            raise ConfigError(f"budget={self.budget} and checkpoints={list(self.checkpoints)}: "
                              "need 1 <= checkpoint <= budget")  # fmt: skip


def _table(config: Config, ctx: Context) -> tuple[Path, str]:
    """The table file, and the command that built it (a tiny one is built when none is given)."""
    if config.table in shipped_tables():
        return table_path(config.table), ""
    if config.table:
        path = Path(config.table)
        path = path if path.is_absolute() else REPO_ROOT / path
        if not path.is_file():
            raise ConfigError(f"table {config.table!r}: no such file (build one with `metaqnn "
                              "bench build`, then `metaqnn bench export`)")  # fmt: skip
        return path, ""
    from metaqnn.tabular.build import build_table
    from metaqnn.tabular.export import export_table
    from metaqnn.tabular.measure import BuildJob
    from metaqnn.tabular.recipe import get_recipe

    out = ctx.work / "table.npz"
    space = get_space(config.build_space, max_depth=config.build_depth)
    job = BuildJob(config.build_dataset, get_recipe(config.build_recipe),
                   config.build_teacher or None, ctx.data_root)  # fmt: skip
    command = (f"build_table(space={config.build_space} depth {config.build_depth}, "
               f"recipe {config.build_recipe}, seeds {list(config.build_seeds)})")  # fmt: skip
    build_table(ctx.work / "build", space, job, tuple(config.build_seeds), progress=False,
                command=command)  # fmt: skip
    if not out.is_file():
        export_table(ctx.work / "build", out)
    return out, command


def _seed_column(table: BenchTable, table_seed: str) -> slice | int:
    if table_seed == "mean":
        return slice(None)
    seeds = [int(s) for s in table.seeds]
    if not table_seed.isdigit() or int(table_seed) not in seeds:
        raise ConfigError(f"table_seed={table_seed!r}: 'mean' or one of the table's seeds {seeds}")
    return seeds.index(int(table_seed))


def _values(table: BenchTable, name: str, col: slice | int) -> np.ndarray:
    """Per architecture: the run array ``name`` at the seed column (or the seeds' mean)."""
    return np.asarray(np.mean(table.arrays[name][:, col], axis=-1) if isinstance(col, slice)
                      else table.arrays[name][:, col], dtype=float)  # fmt: skip


def _schedule(budget: int) -> str:
    """MetaQNN's schedule (``PAPER_STAGES``) scaled to exactly ``budget`` unique models: every
    stage's count times ``budget / 2700`` (at least 1), the rounding taken up by the first."""
    total = sum(n for _, n in PAPER_STAGES)
    stages = [[eps, max(1, round(n * budget / total))] for eps, n in PAPER_STAGES]
    stages[0][1] += budget - sum(n for _, n in stages)
    if stages[0][1] < 1:
        return f"1.0:{budget}"
    return ",".join(f"{eps}:{n}" for eps, n in stages)


def run(config: Config, ctx: Context) -> Outcome:
    """Run every (agent, seed) on the table and report regret and exact fidelity."""
    path, build_command = _table(config, ctx)
    table = load_table(path)
    if not table.complete:
        raise ConfigError(f"{path}: an unfinished table (exported with --partial); finish it")
    col = _seed_column(table, config.table_seed)
    val, test = _values(table, "val_accuracy", col), _values(table, "test_accuracy", col)
    seconds = _values(table, "train_seconds", col)
    budget = min(config.budget, len(table))
    reward = dict(zip(table.architectures.tolist(), val.tolist(), strict=True))
    cost = dict(zip(table.architectures.tolist(), seconds.tolist(), strict=True))
    cache = CachedReward(lambda arch: reward[str(arch)])
    settings = AgentSettings(space=table.space, schedule=_schedule(budget), replay=config.replay,
                             alpha=config.alpha, max_env_steps=config.max_env_steps)  # fmt: skip
    best_val = float(val.max())

    def unit(agent: str, seed: int) -> dict[str, Any]:
        result = run_agent(agent, settings, cache, seed)
        print(f"{agent} seed {seed}: {len(result.rewards)} unique, best "
              f"{max(result.rewards, default=math.nan):.4f} (table best {best_val:.4f}), "
              f"{result.episodes} episodes, {result.wall_s:.1f} s", flush=True)  # fmt: skip
        return result.to_dict()

    by_agent: dict[str, list[AgentRun]] = {a: [] for a in config.agents}
    for agent in config.agents:
        for seed in config.seeds:
            by_agent[agent].append(AgentRun.from_dict(
                ctx.memo(f"{agent}/{seed}", lambda a=agent, s=seed: unit(a, s))))  # fmt: skip
    curves = {a: np.array([regret_curve(r.rewards, best_val, budget) for r in runs])
              for a, runs in by_agent.items()}  # fmt: skip
    grid = np.linspace(0.0, float(np.sort(seconds)[:budget].sum()) * 2, 200)
    times = {a: np.array([time_curve(r.architectures, r.rewards, cost, best_val, grid)
                          for r in runs]) for a, runs in by_agent.items()}  # fmt: skip
    checkpoints = tuple(c for c in config.checkpoints if c <= budget)
    summaries = {a: regret_summary(curves[a], checkpoints) for a in config.agents}
    fidelity = fidelity_rows(table, col, config.top_k)
    plot_regret(curves, ctx.figure("regret_models.png"), xlabel="architectures evaluated")
    plot_regret(times, ctx.figure("regret_time.png"), xlabel="simulated training time (s)",
                x=grid)  # fmt: skip
    header = table.header
    machine = run_metadata(ctx.device)  # this run's commit, not a memo of an earlier one
    summary = {
        "space": table.space.name, "architectures": len(table),
        "seeds_per_architecture": len(table.seeds), "table_bytes": os.path.getsize(path),
        "table": str(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path),
        "table_seed": config.table_seed, "budget": budget, "best_val_accuracy": best_val,
        "test_accuracy_of_best_val": float(test[int(np.argmax(val))]),
        "agents": {a: {"regret_at_100": s.get("regret_at_100"),
                       "regret_at_100_sd": s.get("regret_at_100_sd"), "runs": s["runs"],
                       **s} for a, s in summaries.items()},
        "gtn_spearman_full_space": next((r["spearman"] for r in fidelity
                                         if r["proxy"] == "GTN reward"), None),
        "fidelity": fidelity, "table_header": {k: header.get(k) for k in ("command", "recipe",
                                                                          "machine", "dataset")},
        "built_here": build_command, "commit": machine.get("git_commit"), "machine": machine,
    }  # fmt: skip
    (ctx.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    markdown = report_markdown(summary, summaries, fidelity, checkpoints, len(config.seeds))
    rows = [{"agent": r.agent, "seed": r.seed, "unique": len(r.rewards),
             "best": max(r.rewards, default=math.nan), "episodes": r.episodes}
            for runs in by_agent.values() for r in runs]  # fmt: skip
    return Outcome(markdown, summary, rows)


if __name__ == "__main__":
    raise SystemExit(main(NAME, Config, run, doc=__doc__))
