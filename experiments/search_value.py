"""Equal-compute value of the search: Q-learning and random search, each with the GTN reward
and with a real-data reward, at the same wall-clock search budget per run and several seeds,
every finalist trained the same way, beside the hand-designed baselines trained that way too.

Each (agent, reward, seed) is one ``metaqnn design`` run (:func:`metaqnn.design.run.run_design`)
with a given teacher (its meta-training is paid once, before, and reported separately), the
same search share, the finalists at one fixed width with the same recipe and epochs, and no
baselines of its own: the baselines are trained once per seed with that recipe here. The
winner of a run is its best finalist by validation accuracy; the table gives its test error
(mean +- sd over seeds) per row. The anytime figure is the best search reward so far against
the run's clock, mean over seeds, one panel per reward (a GTN and a real-data reward are not on
one scale). Every run is resumable (its design folder), and finished baselines are memoised.
"""

from __future__ import annotations

import dataclasses
import json
import math
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from envs.layers import Architecture
from experiments.common.teachers import with_config
from experiments.harness import REPO_ROOT, Context, Outcome, main
from gtn.pretrained import PRETRAINED
from metaqnn.core.checkpoint import load_checkpoint
from metaqnn.core.data import load_dataset, split_record
from metaqnn.core.training import TrainConfig
from metaqnn.design.budget import format_duration
from metaqnn.design.finals import Candidate, train_final
from metaqnn.design.pipeline import FINAL_NET, DesignConfig, final_train_config
from metaqnn.design.presets import get_preset
from metaqnn.design.run import run_design
from metaqnn.design.searching import check_agent
from metaqnn.errors import CheckpointError, ConfigError
from metaqnn.markdown import markdown_table
from metaqnn.teacher.run import TeacherRun

NAME = "search_value"


@dataclass(frozen=True)
class Config:
    """The rows, seeds and the budget every run gets."""

    dataset: str = "mnist"
    """Dataset searched and trained on."""
    rows: tuple[str, ...] = ("qlearning/gtn", "qlearning/real", "random/gtn", "random/real")
    """``agent/reward`` per row (agents: ``qlearning``, ``random``; rewards: ``gtn``,
    ``real``)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds of every row (split, search, final training)."""
    search_minutes: float = 15.0
    """Wall-clock search budget of every run (the reward's cost probe included)."""
    width_divisor: int = 16
    """Search width: the space's widths divided by this."""
    score_size: int = 1000
    """Validation images each GTN reward scores."""
    real_epochs: int = 1
    """Epochs of MetaQNN's recipe in the real-data reward."""
    finalists: int = 2
    """Best designs of each run trained to the end."""
    final_width_divisor: int = 4
    """Widths of the finalists (the space's divided by this), the same in every run."""
    recipe: str = "strong"
    """Final recipe of the finalists and the baselines."""
    final_epochs: int = 4
    """Epochs of the final recipe, the same for every finalist and baseline."""
    final_minutes: float = 60.0
    """Final share of every run's budget: ample, so that the finalists always train for
    ``final_epochs`` (the runs are compared at equal search time, not equal final time)."""
    workers: int = 1
    """Design runs at once, each in its own process (every run of a table under the same
    conditions: change it and the table's runs are redone)."""
    threads: int = 0
    """Torch threads of each run (0: torch's default)."""
    gtn_run: str = ""
    """A shipped teacher's name (``mnist``: :data:`gtn.pretrained.PRETRAINED`), or the
    teacher's run folder (relative to the repository root); empty: under the scratch folder,
    trained to ``gtn_outer_steps`` with ``gtn_teacher``."""
    gtn_outer_steps: int = 300
    """Outer steps of the teacher when it must be trained."""
    gtn_teacher: TeacherRun = field(default_factory=TeacherRun)
    """``TeacherRun`` fields of the teacher when it must be trained (a TOML table)."""

    def __post_init__(self) -> None:
        for row in self.rows:
            agent, _, reward = row.partition("/")
            check_agent(agent)
            if reward not in ("gtn", "real"):
                raise ConfigError(f"{NAME}: row {row!r}: the reward must be gtn or real")
        if not self.rows or not self.seeds:
            raise ConfigError(f"{NAME}: rows and seeds must not be empty")
        if not self.search_minutes > 0 or not math.isfinite(self.search_minutes):
            raise ConfigError(f"{NAME}: search_minutes={self.search_minutes!r} must be positive")
        if not self.final_minutes > 0 or not math.isfinite(self.final_minutes):
            raise ConfigError(f"{NAME}: final_minutes={self.final_minutes!r} must be positive")
        if self.threads < 0:
            raise ConfigError(f"{NAME}: threads={self.threads!r} must be 0 (default) or more")
        for name in (
            "finalists",
            "final_epochs",
            "final_width_divisor",
            "width_divisor",
            "workers",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{NAME}: {name}={getattr(self, name)!r} must be positive")
        get_preset(self.dataset)


def _design(config: Config, row: str, seed: int, teacher: Path | None, ctx: Context) -> dict:
    """One run of one row at one seed (resumed when its folder holds one)."""
    agent, _, reward = row.partition("/")
    run_dir = ctx.work / "runs" / f"{agent}-{reward}-seed{seed}"
    # the search gets search_minutes; the final share is ample for the fixed epochs
    search_s, final_s = 60 * config.search_minutes, 60 * config.final_minutes
    design = DesignConfig(
        dataset=config.dataset, budget_s=search_s + final_s, logdir=str(run_dir),
        data_root=ctx.data_root, device=str(ctx.device), seed=seed,
        gtn_checkpoint=None if teacher is None else str(teacher), recipe=config.recipe,
        epochs=config.final_epochs, finalists=config.finalists,
        width_divisor=config.width_divisor, score_size=config.score_size,
        shares=(0.0, search_s / (search_s + final_s), final_s / (search_s + final_s)),
        agent=agent, reward=reward, real_epochs=config.real_epochs,
        baselines=False, final_width_divisor=config.final_width_divisor,
        folds=0,  # picked by validation, as the baseline rows are trained (also on digits)
    )  # fmt: skip
    if (run_dir / "design.json").exists():
        run_design(resume=run_dir, progress=ctx.progress)
    else:
        run_design(design, progress=ctx.progress)
    summary = json.loads((run_dir / "summary.json").read_text())
    timeline = [json.loads(line) for line in (run_dir / "timeline.jsonl").read_text().split("\n")
                if line.strip()]  # fmt: skip
    state = json.loads((run_dir / "design.json").read_text())
    return {
        "row": row, "seed": seed, "test_error_pct": summary["test_error_pct"],
        "val_accuracy": summary["val_accuracy"], "winner": summary["winner"],
        "models": len(timeline), "search_s": state["spent"].get("search", 0.0),
        "final_epochs": sorted({f["epochs"] for f in summary["finals"]}),
        "best_reward": max((t["reward"] for t in timeline), default=math.nan),
        "timeline": [(t["t"], t["reward"]) for t in timeline],
    }  # fmt: skip


def _baseline(config: Config, name: str, seed: int, ctx: Context) -> dict:
    """One of the dataset preset's hand-designed nets, trained with the finalists' recipe."""
    design = DesignConfig(dataset=config.dataset, recipe=config.recipe, seed=seed,
                          epochs=config.final_epochs)  # fmt: skip
    candidate = Candidate(
        name, "baseline", str(Architecture.parse(get_preset(config.dataset).baselines[name]))
    )
    path = ctx.work / "baselines" / f"{candidate.slug}-seed{seed}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    train = final_train_config(design)
    done = _finished_baseline(path, candidate.architecture, train, config.dataset)
    if done is not None:  # trained before its unit was memoised (a stopped table)
        return {"row": name, "seed": seed, **done}
    data = load_dataset(config.dataset, root=ctx.data_root, device=ctx.device, seed=seed)
    result = train_final(candidate, data, train, FINAL_NET, ctx.device, path,
                         progress=ctx.progress,
                         split=split_record(data, seed))  # fmt: skip
    return {"row": name, "seed": seed, "test_error_pct": 100 * (1 - result.test_accuracy),
            "val_accuracy": result.val_accuracy, "winner": result.architecture,
            "wall_s": result.wall_s}  # fmt: skip


def _finished_baseline(path: Path, arch: str, train: TrainConfig, dataset: str) -> dict | None:
    """The results in a baseline's checkpoint, when it holds this net trained this way (its
    training wall time only where the checkpoint records it)."""
    if not path.is_file():
        return None
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError:
        return None  # unreadable: train again
    if (str(ckpt.architecture), ckpt.train_config, ckpt.dataset) != (arch, train, dataset):
        return None
    metrics = ckpt.metrics
    return {"test_error_pct": 100 * (1 - metrics["test_accuracy"]),
            "val_accuracy": metrics["val_accuracy"], "winner": arch,
            "wall_s": metrics.get("wall_s")}  # fmt: skip


# a unit of the table: ("run", row, seed) or ("baseline", name, seed)
Unit = tuple[str, str, int]


def _unit_key(config: Config, unit: Unit) -> str:
    kind, name, seed = unit
    if kind == "run":
        return f"run/{name}/seed{seed}"
    slug = Candidate(name, "baseline", "").slug
    return f"baseline/{slug}/seed{seed}/{config.recipe}/{config.final_epochs}"


def _unit_job(config: Config, unit: Unit, teacher: Path | None, ctx: Context) -> dict:
    """One unit (a design run or a baseline), with the config's torch threads (it may run in a
    worker process)."""
    import torch

    if config.threads:
        torch.set_num_threads(config.threads)
    kind, name, seed = unit
    if kind == "run":
        return _design(config, name, seed, teacher, ctx)
    return _baseline(config, name, seed, ctx)


def _units(config: Config) -> list[Unit]:
    """The table's units in the order they run: seed by seed, each seed's design runs and then
    its baselines."""
    baselines = list(get_preset(config.dataset).baselines)
    return [
        unit
        for seed in config.seeds
        for unit in [*(("run", r, seed) for r in config.rows),
                     *(("baseline", b, seed) for b in baselines)]
    ]  # fmt: skip


def _all_units(config: Config, teacher: Path | None, ctx: Context) -> list[dict]:
    """Every design run and every baseline at every seed, memoised (a finished unit is never
    redone, even on a fresh machine given the memo); ``workers`` at once, seed by seed and the
    baselines of a seed after its runs, so that a stopped table has whole seeds."""
    units = _units(config)
    todo = [u for u in units if not ctx.has_memo(_unit_key(config, u))]
    if config.workers == 1 or len(todo) <= 1:
        return [ctx.memo(_unit_key(config, u), lambda u=u: _unit_job(config, u, teacher, ctx))
                for u in units]  # fmt: skip
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    child = dataclasses.replace(ctx, progress=False, _writer=None, _memo=None)
    with ProcessPoolExecutor(
        config.workers, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        futures = {pool.submit(_unit_job, config, u, teacher, child): u for u in todo}
        failed = []
        for future in as_completed(futures):
            u = futures[future]
            try:
                result = future.result()
            except Exception as err:  # the others go on and are kept; reported at the end
                failed.append(f"{u[1]} seed {u[2]}: {type(err).__name__}: {err}")
                print(f"{u[1]} seed {u[2]} FAILED:", flush=True)
                traceback.print_exception(err)
                continue
            ctx.memo(_unit_key(config, u), lambda result=result: result)
            searched = f", {result['models']} models searched" if u[0] == "run" else ""
            print(f"{u[1]} seed {u[2]}: test error {result['test_error_pct']:.2f} %{searched}",
                  flush=True)  # fmt: skip
    if failed:
        raise RuntimeError(f"{NAME}: {len(failed)} unit(s) failed (the finished ones are kept; "
                           f"run it again to redo these): {'; '.join(failed)}")  # fmt: skip
    return [ctx.memo(_unit_key(config, u), lambda u=u: _unit_job(config, u, teacher, ctx))
            for u in units]  # fmt: skip


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{np.mean(values):.2f} +- {np.std(values, ddof=1):.2f}"


def _plot_anytime(path: Path, runs: list[dict], config: Config) -> None:
    """Best search reward so far against the clock, mean over seeds; a panel per reward."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rewards = sorted({r["row"].partition("/")[2] for r in runs})
    fig, axes = plt.subplots(1, len(rewards), figsize=(5.5 * len(rewards), 4), squeeze=False)
    grid = np.linspace(0, 60 * config.search_minutes, 100)
    for ax, reward in zip(axes[0], rewards, strict=True):
        for row in config.rows:
            if not row.endswith("/" + reward):
                continue
            curves = []
            for run in (r for r in runs if r["row"] == row and r["timeline"]):
                t, y = zip(*run["timeline"], strict=True)
                t0 = t[0] - 1e-9
                best = np.maximum.accumulate(np.asarray(y))
                idx = np.searchsorted(np.asarray(t) - t0, grid, side="right") - 1
                curves.append(np.where(idx >= 0, best[np.clip(idx, 0, None)], np.nan))
            if not curves:
                continue
            stack = np.vstack(curves)
            with warnings.catch_warnings():  # before a row's first model: no value yet
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(stack, axis=0)
            ax.plot(grid / 60, mean, label=f"{row.partition('/')[0]} (n={len(curves)})")
            if len(curves) > 1:
                lo, hi = np.nanmin(stack, axis=0), np.nanmax(stack, axis=0)
                ax.fill_between(grid / 60, lo, hi, alpha=0.2)
        ax.set_xlabel("search clock (minutes)")
        ax.set_ylabel(f"best {reward} reward so far")
        ax.set_title(f"{reward} reward (band: min-max over seeds)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(config: Config, ctx: Context) -> Outcome:
    """Run every row at every seed, train the baselines, tabulate and plot."""
    teacher = None
    if any(r.endswith("/gtn") for r in config.rows) and config.gtn_run in PRETRAINED:
        teacher = Path(config.gtn_run)  # a shipped teacher, by name
    elif any(r.endswith("/gtn") for r in config.rows):
        gtn_dir = REPO_ROOT / config.gtn_run if config.gtn_run else ctx.work / "teacher"
        settings = with_config(config.gtn_teacher, "gtn_teacher", dataset=config.dataset, seed=0)
        teacher = ctx.gtn(gtn_dir, settings, config.gtn_outer_steps)
    reused = sum(ctx.has_memo(_unit_key(config, u)) for u in _units(config))
    done = _all_units(config, teacher, ctx)
    runs = [r for r in done if r["row"] in config.rows]
    baselines = [r for r in done if r["row"] not in config.rows]
    table = []
    for row in [*config.rows, *get_preset(config.dataset).baselines]:
        mine = [r for r in [*runs, *baselines] if r["row"] == row]
        errors = [r["test_error_pct"] for r in mine]
        is_search = row in config.rows
        table.append([
            row, str(len(mine)), _mean_sd(errors),
            f"{np.mean([r['models'] for r in mine]):.0f}" if is_search else "",
            f"{np.mean([r['best_reward'] for r in mine]):.4f}" if is_search else "",
        ])  # fmt: skip
    _plot_anytime(ctx.figure("anytime.png"), runs, config)
    means = {row: float(np.mean([r["test_error_pct"] for r in [*runs, *baselines]
                                 if r["row"] == row]))
             for row in [*config.rows, *get_preset(config.dataset).baselines]}  # fmt: skip
    epochs = sorted({e for r in runs for e in r["final_epochs"]})
    headers = ["row", "runs", "test error %", "models searched", "best search reward"]
    searched = format_duration(sum(r["search_s"] for r in runs))
    markdown = "\n".join(
        [
            f"# Equal-compute value of the search on {config.dataset}",
            "",
            f"Every run: {config.search_minutes:g} minutes of search at widths / "
            f"{config.width_divisor}, its {config.finalists} best designs trained at widths / "
            f"{config.final_width_divisor} with the `{config.recipe}` recipe for "
            f"{config.final_epochs} epochs (epochs run: {epochs}); the winner is the best by "
            "validation. Baselines: the same recipe and epochs. Test error in %, mean +- sd over "
            f"seeds. {config.workers} run(s) at once, "
            f"{config.threads or 'the default number of'} torch thread(s) each.",
            "",
            markdown_table(headers, table),
            "",
            f"Search time of all {len(runs)} runs: {searched}. Of the table's {len(done)} "
            f"units, {reused} were read back from the scratch memo "
            "(finished by an earlier invocation), so the header's wall time counts only the "
            f"other {len(done) - reused}.",
            "",
            "![anytime](anytime.png)",
        ]
    )
    summary = {"test_error_pct": means, "seeds": list(config.seeds),
               "search_minutes": config.search_minutes, "workers": config.workers,
               "threads": config.threads or None}  # fmt: skip
    rows = [{k: v for k, v in r.items() if k != "timeline"} for r in [*runs, *baselines]]
    return Outcome(markdown=markdown, summary=summary, rows=rows)


if __name__ == "__main__":
    main(NAME, Config, run)
