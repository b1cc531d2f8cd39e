"""MetaQNN's Q-learning curve (Fig. 3) on MNIST with the GTN reward, and the top models
retrained on real data beside MetaQNN's 0.44 % test error.

The experiment drives the search machinery of :mod:`metaqnn.search.loop`: a search folder under a
config path (created, resumed after a kill, or copied from an earlier search and then
resumed), MetaQNN's epsilon schedule scaled by a factor, the GTN reward from a meta-trained
teacher (reused, resumed or trained through ``ctx.gtn``). From the finished search it draws
Figure 3 (rolling mean reward and the mean of each epsilon stage), retrains the top K by GTN
reward with MetaQNN's real-data recipe (Adam 0.001, x0.2 at regular epochs, weight decay,
dropout schedule, restarts at chance), each saved as a checkpoint (a killed run reuses the
finished ones), measures test error, and ranks the GTN reward against the retrained accuracy.
The best retrained model (by validation accuracy) is the source of the ``transfer``
experiment.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envs.layers import Architecture
from experiments.harness import REPO_ROOT, Context, Outcome, main
from metaqnn.core.checkpoint import load_checkpoint, save_checkpoint
from metaqnn.core.data import Dataset, Split, load_dataset
from metaqnn.core.nets import NetConfig, count_parameters
from metaqnn.core.training import TrainConfig, evaluate, train_architecture
from metaqnn.errors import ConfigError
from metaqnn.markdown import markdown_table
from metaqnn.rewards.spec import RewardSpec
from metaqnn.search.loop import Search, SearchConfig
from metaqnn.search.report import plot_figure3, ranked, stage_means
from metaqnn.search.schedule import EpsilonSchedule
from metaqnn.search.store import ModelRecord, SearchStore

NAME = "qlearning_curve"

#: MetaQNN's MNIST test error (%) of the top model and of the top-5 ensemble (Baker et al.).
PAPER_TOP_ERROR = 0.44
PAPER_ENSEMBLE_ERROR = 0.32
#: The GTN paper's Spearman rank correlation of the GTN estimate with full training (CIFAR-10).
GTN_PAPER_SPEARMAN = 0.3606
GTN_PAPER_SPEARMAN_TOP_HALF = 0.5582
#: MetaQNN's recipe: 20 epochs over 45-50 k images, lr x0.2 every 5 epochs.
PAPER_EPOCHS = 20
PAPER_DECAY_EPOCHS = 5


@dataclass(frozen=True)
class Config:
    """The search, its teacher and the retraining budget."""

    dataset: str = "mnist"
    """Dataset searched and retrained on."""
    search_dir: str = ""
    """The search folder (relative to the repository root); empty: under the scratch folder.
    A search there is resumed (nothing recorded is evaluated again)."""
    seed_search: str = ""
    """An earlier search folder copied into ``search_dir`` when that has none yet (its
    schedule, space and reward must match this config); empty: start a new search."""
    gtn_run: str = ""
    """The teacher's run folder (relative to the repository root); empty: under the scratch
    folder. Reused, resumed or trained to ``gtn_outer_steps`` with ``gtn_train_args``."""
    gtn_outer_steps: int = 220
    """Outer steps the teacher is meta-trained for."""
    gtn_train_args: tuple[str, ...] = ("--learner", "paper")
    """Arguments of ``metaqnn gtn train`` when the teacher must be trained."""
    width_divisor: int = 16
    """Conv filters and FC widths of the space are divided by this."""
    schedule: str = "0.05"
    """Epsilon schedule: a factor of MetaQNN's 2,700 models, or explicit stages."""
    score_size: int = 1000
    """Validation images the GTN reward scores."""
    replay: int = 100
    """Replayed trajectories after each model (MetaQNN: 100)."""
    seed: int = 0
    """Seed of the search (agent, split, GTN reward)."""
    window: int = 25
    """Models in the rolling mean of Figure 3."""
    top_k: int = 5
    """Top models (by GTN reward) retrained on real data."""
    retrain_epochs: int = 4
    """Epochs of the real-data retraining (MetaQNN: 20)."""
    retrain_decay_epochs: int = 1
    """Epochs between the x0.2 learning-rate decays (MetaQNN: 5 of 20)."""
    retrain_train_size: int = 19200
    """Training images of the retraining (the first of the shuffled training split); 0: all."""
    retrain_val_size: int = 1000
    """Validation images scored after each epoch (the first ones: those the GTN scored)."""
    retrain_test_size: int = 0
    """Test images scored; 0: the whole test set."""
    retrain_max_restarts: int = 5
    """Restarts at chance (MetaQNN: 5)."""
    retrain_seed: int = 0
    """Seed of the retraining (initialisation, dropout, shuffling)."""
    norm: str = "batch"
    """Normalisation of the retrained nets (a key of ``metaqnn.core.nets.NORMS``)."""
    checkpoint_dir: str = ""
    """Where retrained checkpoints go (relative to the repository root); empty: scratch."""
    top_checkpoint: str = ""
    """Where the best retrained model is copied for ``transfer``; empty: scratch."""

    def __post_init__(self) -> None:
        EpsilonSchedule.parse(self.schedule)
        positive = ("gtn_outer_steps", "width_divisor", "window", "top_k", "retrain_epochs",
                    "retrain_decay_epochs", "retrain_val_size")  # fmt: skip
        counts = ("score_size", "replay", "seed", "retrain_train_size", "retrain_test_size",
                  "retrain_max_restarts", "retrain_seed")  # fmt: skip
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{NAME}: {name}={getattr(self, name)!r} must be positive")
        for name in counts:
            if getattr(self, name) < 0:
                raise ConfigError(f"{NAME}: {name}={getattr(self, name)!r} must be >= 0")
        NetConfig(norm=self.norm)


def resolve(path: str, ctx: Context, default: str) -> Path:
    """A config path: relative to the repository root, or ``ctx.work / default`` if empty."""
    if not path:
        return ctx.work / default
    p = Path(path)
    return p if p.is_absolute() else REPO_ROOT / p


# ------------------------------------------------------------------ the search
def search_config(config: Config, ctx: Context, teacher: Path) -> SearchConfig:
    """The :class:`SearchConfig` of a new search."""
    spec = RewardSpec(
        name="gtn",
        dataset=config.dataset,
        data_root=ctx.data_root,
        score_size=config.score_size or None,
        seed=config.seed,
        device=str(ctx.device),
        gtn_checkpoint=str(teacher),
    )
    return SearchConfig(
        reward=spec,
        width_divisor=config.width_divisor,
        schedule=config.schedule,
        replay=config.replay,
        seed=config.seed,
    )


def check_stored(stored: dict[str, Any], wanted: SearchConfig, where: Path) -> None:
    """Raise a ConfigError if a stored search is not the one ``wanted`` describes."""
    have = SearchConfig.from_dict(stored)
    pairs = {
        "schedule": (EpsilonSchedule.parse(have.schedule), EpsilonSchedule.parse(wanted.schedule)),
        "width_divisor": (have.width_divisor, wanted.width_divisor),
        "dataset": (have.reward.dataset, wanted.reward.dataset),
        "reward": (have.reward.name, wanted.reward.name),
        "replay": (have.replay, wanted.replay),
        "seed": (have.seed, wanted.seed),
    }
    wrong = [f"{k} {a!r} (config: {b!r})" for k, (a, b) in pairs.items() if a != b]
    if wrong:
        raise ConfigError(f"search at {where} differs from the config: {'; '.join(wrong)}")


def run_search(config: Config, ctx: Context) -> Path:
    """The finished search folder: created, copied from ``seed_search``, or resumed."""
    from metaqnn.search.tb import SearchLogger

    run_dir = resolve(config.search_dir, ctx, "search")
    db = run_dir / "search.db"
    seed = resolve(config.seed_search, ctx, "") if config.seed_search else None
    if not db.is_file() and seed is not None:
        if not (seed / "search.db").is_file():
            raise ConfigError(f"{NAME}: seed_search {seed} holds no search.db")
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(seed / "search.db", db)
        print(f"copied the search {seed} into {run_dir}", flush=True)
    if db.is_file():
        store = SearchStore.open(run_dir)
        stored, done = store.config, store.count()
        store.close()
        teacher = Path(stored["reward"]["gtn_checkpoint"] or "")
        check_stored(stored, search_config(config, ctx, teacher), run_dir)
        if done >= EpsilonSchedule.parse(stored["schedule"]).total:
            return run_dir
        search = Search.resume(run_dir)
    else:
        teacher = ctx.gtn(
            resolve(config.gtn_run, ctx, "gtn"),
            ["--dataset", config.dataset, "--seed", str(config.seed), *config.gtn_train_args],
            config.gtn_outer_steps,
        )
        search = Search.create(search_config(config, ctx, teacher), run_dir)
    search.logger = SearchLogger(run_dir, search.config.to_dict())
    try:
        search.run(progress=ctx.progress)
    finally:
        search.close()
    return run_dir


# ------------------------------------------------------------------ retraining
def first(split: Split, n: int) -> Split:
    """The first ``n`` examples of ``split`` (all of them for ``n == 0``)."""
    return split if n == 0 else Split(split.x[:n], split.y[:n])


def train_config(config: Config) -> TrainConfig:
    """MetaQNN's recipe on the configured budget."""
    return TrainConfig(
        epochs=config.retrain_epochs,
        lr_decay_epochs=config.retrain_decay_epochs,
        max_restarts=config.retrain_max_restarts,
        seed=config.retrain_seed,
    )


def retrain(
    model: ModelRecord, data: Dataset, config: Config, path: Path, ctx: Context
) -> dict[str, Any]:
    """Retrain one searched model on real data and save it at ``path``; a checkpoint already
    there with the same recipe and budget is reused. Returns its metrics."""
    arch = Architecture.parse(model.architecture)
    recipe = train_config(config)
    net = NetConfig(norm=config.norm)
    budget = {
        "train_size": config.retrain_train_size,
        "val_size": config.retrain_val_size,
        "test_size": config.retrain_test_size,
    }
    if path.is_file():
        ckpt = load_checkpoint(path)
        if (
            ckpt.train_config == recipe
            and ckpt.net_config == net
            and ckpt.metrics.get("budget") == budget
            and str(ckpt.architecture) == model.architecture
        ):
            return dict(ckpt.metrics)
    train = first(data.train, config.retrain_train_size)
    val = first(data.val, config.retrain_val_size)
    test = first(data.test, config.retrain_test_size)
    result = train_architecture(
        arch, train, val, recipe, net_config=net, device=ctx.device, progress=ctx.progress
    )
    if result.status != "ok":
        metrics: dict[str, Any] = {"status": result.status, "reason": result.reason}
        return {**metrics, "budget": budget, "val_accuracy": None, "test_accuracy": None}
    scored = evaluate(result.model, test, batch_size=recipe.eval_batch_size)
    metrics = {
        "status": "ok",
        "budget": budget,
        "val_accuracy": result.val_accuracy,
        "test_accuracy": scored.accuracy,
        "test_loss": scored.loss,
        "train_wall_time_s": result.wall_time_s,
        "steps": result.total_steps,
        "restarts": result.restarts,
        "parameters": count_parameters(result.model),
        "history": [dict(h) for h in result.history],
        "normalization": {"mean": list(data.mean), "std": list(data.std)},
        "gtn_reward": model.reward,
    }
    save_checkpoint(
        path, architecture=arch, net_config=net, train_config=recipe, dataset=data.name,
        input_shape=data.spec.input_shape, state_dict=result.state_dict(), metrics=metrics,
    )  # fmt: skip
    return metrics


def retrain_top(
    store: SearchStore, config: Config, ctx: Context
) -> tuple[list[dict[str, Any]], Path | None, int]:
    """Retrain the top K by GTN reward. Returns the rows in GTN-rank order, the checkpoint of
    the best by retrained validation accuracy (None if every retraining failed), and the size
    of the whole training split."""
    reward = RewardSpec(**store.config["reward"])
    data = load_dataset(
        config.dataset,
        root=ctx.data_root or reward.data_root,
        val_size=reward.val_size,
        seed=reward.seed,
        device=ctx.device,
    )
    out = resolve(config.checkpoint_dir, ctx, "retrained")
    rows = []
    top = [m for m in ranked(store.models()) if m.status == "ok"][: config.top_k]
    for rank, model in enumerate(top, start=1):
        tag = hashlib.sha1(model.architecture.encode()).hexdigest()[:10]
        path = out / f"{tag}.pt"
        metrics = retrain(model, data, config, path, ctx)
        store.record_retrained(
            model.architecture,
            config.retrain_epochs,
            {
                "val_accuracy": metrics["val_accuracy"],
                "test_accuracy": metrics["test_accuracy"],
                "status": metrics["status"],
                "wall_time_s": metrics.get("train_wall_time_s"),
            },
        )
        if metrics["test_accuracy"] is not None:
            ctx.tb.add_scalar("retrain/test_accuracy", metrics["test_accuracy"], rank)
            ctx.tb.add_scalar("retrain/gtn_reward", model.reward, rank)
        rows.append(
            {"gtn_rank": rank, "architecture": model.architecture, "reward": model.reward,
             "epsilon": model.epsilon, "checkpoint": str(path), **metrics}
        )  # fmt: skip
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        return rows, None, len(data.train)
    best = max(ok, key=lambda r: (r["val_accuracy"], -r["gtn_rank"]))
    target = resolve(config.top_checkpoint, ctx, "top.pt")
    target.parent.mkdir(parents=True, exist_ok=True)
    if Path(best["checkpoint"]).resolve() != target.resolve():
        shutil.copy2(best["checkpoint"], target)
    return rows, target, len(data.train)


# ------------------------------------------------------------------ the report
def stage_rows(models: list[ModelRecord]) -> list[dict[str, Any]]:
    """Per epsilon stage: models, mean reward, share with global average pooling."""
    rows, start = [], 0
    for eps, n, mean in stage_means(models):
        stage = models[start : start + n]
        gap = sum("GAP" in m.architecture for m in stage) / n
        rows.append({"epsilon": eps, "models": n, "mean_reward": mean, "share_gap": gap})
        start += n
    return rows


def teacher_steps(stored: dict[str, Any]) -> str:
    """The inner steps of a search's GTN teacher, as text ("?" when its run is gone)."""
    from gtn.meta import load_meta_checkpoint

    try:
        state = load_meta_checkpoint(stored["reward"]["gtn_checkpoint"])
    except (OSError, ValueError, TypeError, KeyError):
        return "?"
    return str(state["teacher_config"]["inner_steps"])


def _scaling(config: Config, models: int, train_images: int, steps: str) -> str:
    schedule = EpsilonSchedule.parse(config.schedule)
    size = config.retrain_train_size or train_images
    seen = config.retrain_epochs * size
    paper_seen = PAPER_EPOCHS * train_images
    return (
        f"Scaling: MetaQNN trained 2,700 models (schedule "
        f"`{EpsilonSchedule().to_spec()}`); this search has {models} of {schedule.total} "
        f"(schedule `{schedule.to_spec()}`), with conv filters and FC widths divided by "
        f"{config.width_divisor}, each scored by the GTN reward ({steps} steps of a meta-trained "
        f"teacher, validation accuracy on {config.score_size} images) instead of 20 epochs of "
        f"real data. Retraining keeps MetaQNN's recipe (Adam 0.001, betas 0.9/0.999, weight "
        f"decay 5e-4, batch 128, dropout schedule, Xavier init, restarts at chance) but on "
        f"{config.retrain_epochs} epochs of the first {size:,} training images "
        f"with the x0.2 decay every {config.retrain_decay_epochs} epoch(s) (MetaQNN: 20 epochs "
        f"of the whole training set, decay every 5): {seen:,} training examples against "
        f"{paper_seen:,} ({100 * seen / paper_seen:.1f} %); batch norm is added (`{config.norm}`"
        f", as in the project's real-data reward)."
    )


def _stage_cells(s: dict[str, Any]) -> list[str]:
    return [f"{s['epsilon']:g}", str(s["models"]), f"{s['mean_reward']:.3f}",
            f"{100 * s['share_gap']:.0f} %"]  # fmt: skip


RETRAIN_HEADER = [
    "GTN rank", "architecture", "GTN reward", "retrained val acc", "test acc", "test error %",
    "MetaQNN test error %", "params", "restarts", "train s",
]  # fmt: skip


def _num(value: float | None, spec: str, scale: float = 1.0, offset: float = 0.0) -> str:
    return "-" if value is None else format(offset + scale * value, spec)


def _retrain_cells(r: dict[str, Any], with_paper: bool) -> list[str]:
    return [
        str(r["gtn_rank"]),
        f"`{r['architecture']}`",
        f"{r['reward']:.3f}",
        _num(r["val_accuracy"], ".4f"),
        _num(r["test_accuracy"], ".4f"),
        _num(r["test_accuracy"], ".2f", -100.0, 100.0),
        f"{PAPER_TOP_ERROR}" if with_paper else "",
        str(r.get("parameters", "-")),
        str(r.get("restarts", "-")),
        _num(r.get("train_wall_time_s"), ".0f"),
    ]


def report(
    config: Config,
    models: list[ModelRecord],
    stages: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    corr: Any,
    search_dir: Path,
    train_images: int,
    steps: str,
) -> str:
    """The results markdown."""
    first_mean, last_mean = stages[0]["mean_reward"], stages[-1]["mean_reward"]
    best_row = max(
        (r for r in rows if r["status"] == "ok"), key=lambda r: r["val_accuracy"], default=None
    )
    where = (
        search_dir.relative_to(REPO_ROOT) if search_dir.is_relative_to(REPO_ROOT) else search_dir
    )
    lines = [
        f"Search folder `{where}`: {len(models)} unique models.",
        "",
        _scaling(config, len(models), train_images, steps),
        "",
        "## Figure 3: the Q-learning curve",
        "",
        "![Q-learning curve](figure3.png)",
        "",
        markdown_table(
            ["epsilon", "models", "mean GTN reward", "share with GAP"],
            [_stage_cells(s) for s in stages],
        ),
        "",
        f"Mean reward at the last epsilon ({stages[-1]['epsilon']:g}) against the first "
        f"({stages[0]['epsilon']:g}): {last_mean:.3f} vs {first_mean:.3f}, "
        f"**{100 * (last_mean - first_mean):+.1f} points**. MetaQNN's Figure 3 shows the mean "
        "accuracy rising as epsilon falls (their per-stage MNIST means are not given in numbers "
        f"in `RESEARCH.md`); ours {'rises too' if last_mean > first_mean else 'does not rise'} "
        "from the first stage to the last, and with a few models per stage the stages in "
        "between are noisy, where MetaQNN's 100-150 models per stage gave a smooth curve.",
        "",
        f"## The top {len(rows)} by GTN reward, retrained on real data",
        "",
        markdown_table(RETRAIN_HEADER, [_retrain_cells(r, i == 0) for i, r in enumerate(rows)]),
    ]
    if best_row is not None:
        err = 100 * (1 - best_row["test_accuracy"])
        d, size = config.width_divisor, config.retrain_train_size or train_images
        lines += [
            "",
            f"Best by retrained validation accuracy: `{best_row['architecture']}` (GTN rank "
            f"{best_row['gtn_rank']}), **{err:.2f} % test error** against MetaQNN's "
            f"{PAPER_TOP_ERROR} % (top model; {PAPER_ENSEMBLE_ERROR} % for their ensemble). The "
            f"gap ({err - PAPER_TOP_ERROR:+.2f} points) comes from three scalings, each of which "
            f"costs accuracy: widths divided by {config.width_divisor} ({64 // d}-{512 // d} "
            f"filters against MetaQNN's 64-512), a search of {len(models)} models against "
            f"2,700, and retraining on {config.retrain_epochs} epochs of {size:,} images "
            "against 20 epochs of the whole set.",
        ]
    if corr is not None:
        s, k = corr.spearman, corr.kendall
        lines += [
            "",
            f"Rank of the GTN reward against the retrained test accuracy over these {corr.n}: "
            f"Spearman **{s.value:+.3f}** (95 % bootstrap interval {s.low:+.2f} to "
            f"{s.high:+.2f}), Kendall {k.value:+.3f} ({k.low:+.2f} to {k.high:+.2f}). The GTN "
            f"paper reports Spearman {GTN_PAPER_SPEARMAN} over all architectures and "
            f"{GTN_PAPER_SPEARMAN_TOP_HALF} over the top half (CIFAR-10, hundreds of "
            f"architectures); ours ranks only the {corr.n} best by GTN reward, a narrow band of "
            "rewards, so its interval is wide and it says little on its own.",
        ]
    return "\n".join(lines)


def run(config: Config, ctx: Context) -> Outcome:
    """Search (or resume), draw Figure 3, retrain the top K, rank them."""
    from metaqnn.evaluation import rank_correlation

    search_dir = run_search(config, ctx)
    store = SearchStore.open(search_dir)
    try:
        models = store.models()
        steps = teacher_steps(store.config)
        if not models:
            raise ConfigError(f"{NAME}: the search at {search_dir} recorded no model")
        plot_figure3(
            models,
            ctx.figure("figure3.png"),
            window=config.window,
            title=f"Q-learning on {config.dataset} with the GTN reward ({len(models)} models)",
        )
        stages = stage_rows(models)
        for i, s in enumerate(stages):
            ctx.tb.add_scalar("search/stage_mean_reward", s["mean_reward"], i)
        rows, top, train_images = retrain_top(store, config, ctx)
    finally:
        store.close()
    ok = [r for r in rows if r["status"] == "ok"]
    corr = None
    if len(ok) >= 3:
        corr = rank_correlation(
            [r["reward"] for r in ok], [r["test_accuracy"] for r in ok], ks=(), seed=config.seed
        )
    best = max(ok, key=lambda r: (r["val_accuracy"], -r["gtn_rank"]), default=None)
    summary = {
        "models": len(models),
        "first_stage_mean": stages[0]["mean_reward"],
        "last_stage_mean": stages[-1]["mean_reward"],
        "rise_points": 100 * (stages[-1]["mean_reward"] - stages[0]["mean_reward"]),
        "best_architecture": None if best is None else best["architecture"],
        "best_test_error_pct": None if best is None else 100 * (1 - best["test_accuracy"]),
        "paper_test_error_pct": PAPER_TOP_ERROR,
        "spearman": None if corr is None else corr.spearman.value,
        "top_checkpoint": None if top is None else str(top),
    }
    table = [{k: v for k, v in r.items() if k != "history"} for r in rows]
    return Outcome(
        markdown=report(config, models, stages, rows, corr, search_dir, train_images, steps),
        summary=summary,
        rows=[{"kind": "stage", **s} for s in stages] + [{"kind": "retrained", **r} for r in table]
        + ([] if corr is None else [{"kind": "rank_correlation", **corr.to_dict()}]),
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main(NAME, Config, run, doc=__doc__))
