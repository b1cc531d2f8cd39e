"""MetaQNN's transfer table: the top MNIST architecture of the Q-learning search trained on
Fashion-MNIST from scratch and finetuned from its MNIST weights.

The source is the best retrained model of the ``qlearning_curve`` experiment (its checkpoint:
architecture, net config and MNIST weights). When that checkpoint is missing, ``qlearning_curve``
is run first under the scratch folder with its own config (its quick table in quick mode), so
that the experiment works from a clean clone. Both modes use one budget and recipe
(:func:`metaqnn.evaluation.transfer`); they differ only in the starting weights. Each seed is a
unit of work stored with ``ctx.memo`` (a killed run does not redo finished seeds).
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.common.checks import at_least, distinct_seeds, known_choices
from experiments.harness import REPO_ROOT, Context, Outcome, main
from metaqnn.core.checkpoint import load_checkpoint
from metaqnn.core.data import Dataset, Split, load_dataset
from metaqnn.core.training import TrainConfig
from metaqnn.errors import ConfigError
from metaqnn.evaluation.transfer import TRANSFER_MODES, transfer
from metaqnn.markdown import markdown_table

NAME = "transfer"

#: MetaQNN's transfer of its top CIFAR-10 model (test error %), Baker et al. 2017.
PAPER_TRANSFER: dict[str, dict[str, float]] = {
    "scratch": {"CIFAR-100": 27.14, "SVHN": 2.48, "MNIST": 0.80},
    "finetuned": {"CIFAR-100": 34.93, "SVHN": 4.00, "MNIST": 0.81},
}


@dataclass(frozen=True)
class Config:
    """The source checkpoint, the target and the shared training budget."""

    source_checkpoint: str = ""
    """The MNIST model (relative to the repository root); empty or missing: made by running
    ``qlearning_curve`` under the scratch folder."""
    target: str = "fashion-mnist"
    """Dataset transferred to."""
    modes: tuple[str, ...] = ("scratch", "finetuned")
    """Keys of ``metaqnn.evaluation.transfer.TRANSFER_MODES``, in order."""
    seeds: tuple[int, ...] = (0, 1)
    """Training seeds (initialisation, dropout, shuffling); each mode runs every seed."""
    epochs: int = 4
    """Epochs of training on the target (MetaQNN: 20)."""
    decay_epochs: int = 1
    """Epochs between the x0.2 learning-rate decays (MetaQNN: 5 of 20)."""
    train_size: int = 9600
    """Training images of the target (the first of its shuffled training split); 0: all."""
    val_size: int = 1000
    """Validation images scored after each epoch."""
    test_size: int = 0
    """Test images scored; 0: the whole test set."""
    max_restarts: int = 5
    """Restarts at chance (MetaQNN: 5)."""
    split_seed: int = 0
    """Seed of the target's validation split."""

    def __post_init__(self) -> None:
        known_choices("modes", self.modes, TRANSFER_MODES)
        distinct_seeds(self.seeds)
        at_least(self, ("epochs", "decay_epochs", "val_size"))
        at_least(self, ("train_size", "test_size", "max_restarts", "split_seed"), least=0)


def source_checkpoint(config: Config, ctx: Context) -> Path:
    """The source checkpoint: the configured one, or one made by ``qlearning_curve``."""
    if config.source_checkpoint:
        path = Path(config.source_checkpoint)
        path = path if path.is_absolute() else REPO_ROOT / path
        if path.is_file():
            return path
        print(f"{path} not found: running qlearning_curve to make it", flush=True)
    outcome = ctx.experiment("qlearning_curve")
    top = outcome.summary.get("top_checkpoint")
    if top is None:
        raise ConfigError(f"{NAME}: qlearning_curve retrained no model to transfer")
    return Path(top)


def target_data(config: Config, ctx: Context) -> Dataset:
    """The target dataset cut to the configured training, validation and test sizes."""
    data = load_dataset(config.target, root=ctx.data_root, seed=config.split_seed,
                        device=ctx.device)  # fmt: skip

    def first(split: Split, n: int) -> Split:
        return split if n == 0 else Split(split.x[:n], split.y[:n])

    return dataclasses.replace(
        data,
        train=first(data.train, config.train_size),
        val=first(data.val, config.val_size),
        test=first(data.test, config.test_size),
    )


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def report(config: Config, ckpt: Any, rows: list[dict[str, Any]], total: int) -> str:
    """The results markdown."""
    source_error = 100 * (1 - ckpt.metrics["test_accuracy"])
    per_mode = {m: [100 * (1 - r["test_accuracy"]) for r in rows if r["mode"] == m]
                for m in config.modes}  # fmt: skip
    table = []
    for mode, errors in per_mode.items():
        mean, sd = _mean_sd(errors)
        paper = PAPER_TRANSFER.get(mode, {})
        table.append([
            mode, f"**{mean:.2f}** ± {sd:.2f} ({len(errors)} seeds)",
            " / ".join(f"{v:.2f}" for v in errors),
            *(f"{paper[k]:.2f}" if k in paper else "-" for k in ("MNIST", "SVHN", "CIFAR-100")),
        ])  # fmt: skip
    seen = config.epochs * (config.train_size or total)
    lines = [
        f"Source: `{ckpt.architecture}`, the best retrained model of `qlearning_curve` "
        f"(MNIST test error {source_error:.2f} %, checkpoint `{ckpt.path.name}`). Target: "
        f"{config.target}, {config.epochs} epochs of the first {config.train_size or total:,} "
        f"training images ({seen:,} examples; MetaQNN: 20 epochs of the whole set, "
        f"{20 * total:,}), MetaQNN's recipe (Adam 0.001, x0.2 every {config.decay_epochs} "
        "epoch(s), weight decay 5e-4, dropout schedule, restarts at chance), the same budget "
        "and seeds for both modes; test error on "
        f"{config.test_size or 'all'} test images.",
        "",
        "MetaQNN's table transfers its top **CIFAR-10** model to CIFAR-100, SVHN and MNIST; "
        "ours transfers the top **MNIST** model to **Fashion-MNIST**, a different pair of "
        "datasets, so the columns are context, not a like-for-like comparison.",
        "",
        markdown_table(
            [
                "mode",
                "Fashion-MNIST test error % (ours)",
                "per seed",
                "MetaQNN -> MNIST",
                "MetaQNN -> SVHN",
                "MetaQNN -> CIFAR-100",
            ],
            table,
        ),
    ]
    if "scratch" in per_mode and "finetuned" in per_mode:
        scratch, tuned = (statistics.fmean(per_mode[m]) for m in ("scratch", "finetuned"))
        if tuned < scratch:
            verdict = (
                "MetaQNN found the opposite (finetuning worse by +0.01 points on MNIST, +1.52 on "
                "SVHN, +7.79 on CIFAR-100, 20 epochs each); a short budget leaves a warm start "
                "more room to help."
            )
        else:
            verdict = (
                "It hurt in MetaQNN too (+0.01 points on MNIST, +1.52 on SVHN, +7.79 on "
                "CIFAR-100, 20 epochs each): the source's weights give the target no head start "
                "under the same budget."
            )
        lines += [
            "",
            f"Finetuning from the MNIST weights {'helps' if tuned < scratch else 'hurts'}: "
            f"{tuned:.2f} % against {scratch:.2f} % from scratch ({tuned - scratch:+.2f} "
            f"points). {verdict}",
        ]
    return "\n".join(lines)


def run(config: Config, ctx: Context) -> Outcome:
    """Train the source architecture on the target, per mode and seed, and test it."""
    path = source_checkpoint(config, ctx)
    ckpt = load_checkpoint(path, map_location="cpu")
    data = target_data(config, ctx)
    full = len(load_dataset(config.target, root=ctx.data_root, seed=config.split_seed,
                            device=ctx.device).train)  # fmt: skip
    rows: list[dict[str, Any]] = []
    for seed in config.seeds:
        recipe = TrainConfig(epochs=config.epochs, lr_decay_epochs=config.decay_epochs,
                             max_restarts=config.max_restarts, seed=seed)  # fmt: skip

        def one(recipe: TrainConfig = recipe) -> list[dict[str, Any]]:
            runs = transfer(ckpt, data, recipe, modes=config.modes, device=ctx.device,
                            progress=ctx.progress)  # fmt: skip
            return [dataclasses.asdict(r) for r in runs]

        key = f"{path.resolve()}:{ckpt.created}:seed{seed}"
        for r in ctx.memo(key, one):
            rows.append({"seed": seed, **r})
            ctx.tb.add_scalar(f"transfer/{r['mode']}_test_accuracy", r["test_accuracy"], seed)
    summary: dict[str, Any] = {
        "source": str(ckpt.architecture),
        "source_test_error_pct": 100 * (1 - ckpt.metrics["test_accuracy"]),
        "target": config.target,
    }
    for mode in config.modes:
        errors = [100 * (1 - r["test_accuracy"]) for r in rows if r["mode"] == mode]
        summary[f"{mode}_test_error_pct"] = statistics.fmean(errors)
    slim = [{k: v for k, v in r.items() if k not in ("transferred", "reinitialised")} | {
        "transferred": len(r["transferred"]), "reinitialised": len(r["reinitialised"])}
        for r in rows]  # fmt: skip
    return Outcome(markdown=report(config, ckpt, rows, full), summary=summary, rows=slim)


if __name__ == "__main__":
    raise SystemExit(main(NAME, Config, run, doc=__doc__))
