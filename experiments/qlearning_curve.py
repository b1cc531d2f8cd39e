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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envs.layers import Architecture
from experiments.common.search_report import (
    PAPER_TOP_ERROR,
    report,
    stage_rows,
    teacher_steps,
)
from experiments.common.teachers import with_config
from experiments.harness import REPO_ROOT, Context, Outcome, main
from metaqnn.core.checkpoint import load_checkpoint, save_checkpoint
from metaqnn.core.data import Dataset, Split, load_dataset
from metaqnn.core.nets import NetConfig, count_parameters
from metaqnn.core.training import TrainConfig, evaluate, train_architecture
from metaqnn.errors import ConfigError
from metaqnn.rewards.spec import RewardSpec
from metaqnn.search.loop import Search, SearchConfig
from metaqnn.search.report import plot_figure3, ranked
from metaqnn.search.schedule import EpsilonSchedule
from metaqnn.search.store import ModelRecord, SearchStore
from metaqnn.teacher.run import TeacherRun

NAME = "qlearning_curve"


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
    folder. Reused, resumed or trained to ``gtn_outer_steps`` with ``gtn_teacher``."""
    gtn_outer_steps: int = 220
    """Outer steps the teacher is meta-trained for."""
    gtn_teacher: TeacherRun = field(default_factory=lambda: TeacherRun(learner="paper"))
    """``TeacherRun`` fields of the teacher when it must be trained (a TOML table); its dataset
    and seed are this config's."""
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
        settings = with_config(config.gtn_teacher, "gtn_teacher", dataset=config.dataset,
                               seed=config.seed)  # fmt: skip
        teacher = ctx.gtn(resolve(config.gtn_run, ctx, "gtn"), settings, config.gtn_outer_steps)
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
