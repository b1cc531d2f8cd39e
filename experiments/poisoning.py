"""Poisoning with synthetic data (Dataset Distillation's attack) mixed into a victim's training.

A handful of learned images labelled ``target`` join a clean MNIST training subset; the victim
(a small CNN from the search space's layer vocabulary) pre-trains on the clean data, then trains
on the poisoned union with shuffled mini-batches (:mod:`gtn.poison`). The attacker backpropagates
through that training to make held-out ``source`` images go to ``target`` while every other
class keeps its label. Measured, per threat model and number of poisons, on victims trained with
``torch.optim.SGD`` and the full MNIST test set:

- attack success (share of ``source`` test images classified ``target``) and accuracy on the
  other classes, for the learned poisons, for the label-flipping baseline they start from
  (``source`` images labelled ``target``) and for the same victims trained on clean data;
- what the evaluation module's robustness tests (noise, blur, FGSM, PGD, corruptions) show on
  the most poisoned model against its clean twin.

Threat models (:data:`THREATS`): ``white-box`` (initialisation and batch order known: the
victim's training is deterministic, DD's fixed-initialisation setting), ``fixed`` (initialisation
known, batch order not), ``random`` (neither; the attacker trains against a pool of
initialisations, evaluation uses others). Each attack checkpoints and resumes; each
(threat, count) is a memoised unit.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

import torch

from envs.layers import Architecture
from experiments.common.poison_figures import plot_attacks, poison_grid
from experiments.harness import Context, Outcome, main
from gtn.meta import LearnerFactory
from gtn.poison import (
    Data,
    PoisonAttack,
    PoisonConfig,
    VictimConfig,
    evaluate_poisons,
)
from metaqnn.core.data import load_dataset
from metaqnn.core.nets import NetConfig
from metaqnn.errors import ConfigError
from metaqnn.evaluation import PixelModel
from metaqnn.evaluation.robustness import RobustnessConfig, evaluate_robustness
from metaqnn.markdown import markdown_table
from metaqnn.teacher.shapes import fixed_learner_factory

NAME = "poisoning"

#: Threat model -> the PoisonConfig fields that make it.
THREATS: dict[str, dict[str, Any]] = {
    "white-box": {"victim_init": "fixed", "known_order": True},
    "fixed": {"victim_init": "fixed", "known_order": False},
    "random": {"victim_init": "random", "known_order": False},
}


@dataclass(frozen=True)
class Config:
    """The attack's budget and the victim's recipe."""

    dataset: str = "mnist"
    """Dataset."""
    val_size: int = 5000
    """Training images held out (the outer objective draws from them)."""
    split_seed: int = 0
    """Seed of the validation split and of the training subset."""
    train_size: int = 1980
    """Clean training images of the victim (a random subset)."""
    val_images: int = 1000
    """Held-out images of the outer objective."""
    source: int = 7
    """The class to misclassify."""
    target: int = 1
    """The class it should become (every poison's label)."""
    architecture: str = "[C(16,5,2), C(32,5,2), SM(10)]"
    """The victim (search-space syntax; no normalisation, ReLU, Kaiming init)."""
    pretrain_epochs: int = 3
    """Victim epochs on clean data before the poisons arrive."""
    epochs: int = 1
    """Victim epochs on the poisoned set."""
    batch_size: int = 50
    """Victim mini-batch."""
    lr: float = 0.02
    """Victim SGD learning rate."""
    momentum: float = 0.9
    """Victim SGD momentum."""
    threats: tuple[str, ...] = ("white-box", "fixed", "random")
    """Threat models (keys of :data:`THREATS`)."""
    counts: tuple[int, ...] = (5, 10, 20)
    """Numbers of poisons of the ``white-box`` curve."""
    unknown_counts: tuple[int, ...] = (5, 10, 20)
    """Numbers of poisons of the ``fixed`` and ``random`` threat models."""
    outer_steps: int = 200
    """Outer steps of a ``white-box`` attack."""
    unknown_outer_steps: int = 100
    """Outer steps of a ``fixed`` or ``random`` attack."""
    unknown_meta_batch: int = 2
    """Victim trainings per outer step of a ``fixed`` or ``random`` attack."""
    outer_lr: float = 0.1
    """Outer Adam learning rate on the pixel logits (``white-box``)."""
    unknown_outer_lr: float = 0.1
    """Outer Adam learning rate of a ``fixed`` or ``random`` attack."""
    unknown_truncate: int = 0
    """Backpropagate a ``fixed`` or ``random`` attack only through the last this many victim
    steps (0: all)."""
    init_pool: int = 4
    """Initialisations a ``random`` attacker trains against."""
    eval_runs: int = 3
    """Held-out victims per ``fixed``/``random`` attack (``white-box`` has one)."""
    robustness_images: int = 1000
    """Test images of the robustness report (attacks on the first half)."""
    seed: int = 0
    """Seed of the poisons, victims and orders."""

    def __post_init__(self) -> None:
        for name in self.threats:
            if name not in THREATS:
                raise ConfigError(f"threat {name!r}: choose from {', '.join(THREATS)}")
        for name in (
            "train_size",
            "val_images",
            "outer_steps",
            "unknown_outer_steps",
            "unknown_meta_batch",
            "eval_runs",
            "robustness_images",
            "init_pool",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)!r}: expected a positive integer")
        if not self.counts or any(c < 1 for c in (*self.counts, *self.unknown_counts)):
            raise ConfigError(
                f"counts={self.counts!r}, unknown_counts="
                f"{self.unknown_counts!r}: expected positive integers"
            )
        Architecture.parse(self.architecture)  # raises an error naming the bad layer
        self.victim()  # raises an error naming a bad victim field
        PoisonConfig(source=self.source, target=self.target, count=1)

    def victim(self) -> VictimConfig:
        """The victim's recipe."""
        return VictimConfig(
            self.pretrain_epochs, self.epochs, self.batch_size, self.lr, self.momentum
        )

    def attack(self, threat: str, count: int) -> PoisonConfig:
        """The attack of one (threat, count)."""
        white = threat == "white-box"
        return PoisonConfig(
            source=self.source,
            target=self.target,
            count=count,
            init="source",
            outer_steps=self.outer_steps if white else self.unknown_outer_steps,
            outer_lr=self.outer_lr if white else self.unknown_outer_lr,
            meta_batch=1 if white else self.unknown_meta_batch,
            truncate=None if white or not self.unknown_truncate else self.unknown_truncate,
            init_pool=self.init_pool,
            seed=self.seed,
            **THREATS[threat],
        )


@dataclass
class Setup:
    """Data and the victim factory."""

    data: Data
    source_pixels: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    test_pixels: torch.Tensor
    factory: LearnerFactory
    mean: tuple[float, ...]
    std: tuple[float, ...]


def _setup(config: Config, ctx: Context) -> Setup:
    ds = load_dataset(
        config.dataset,
        root=ctx.data_root,
        val_size=config.val_size,
        seed=config.split_seed,
        device=ctx.device,
    )
    if config.train_size > len(ds.train):
        raise ConfigError(
            f"train_size={config.train_size}: {config.dataset} has {len(ds.train)} training images"
        )
    gen = torch.Generator().manual_seed(config.split_seed)
    pick = torch.randperm(len(ds.train), generator=gen)[: config.train_size].to(ctx.device)
    val_x, val_y = ds.val.x[: config.val_images], ds.val.y[: config.val_images]
    data = Data(ds.train.x[pick], ds.train.y[pick], val_x, val_y, ds.mean, ds.std)
    # poisons start from source images outside both the victim's data and the outer objective
    rest = ds.val.x[config.val_images :][ds.val.y[config.val_images :] == config.source]
    net = NetConfig(norm="none", activation="relu", dropout=False, init="kaiming")
    factory = fixed_learner_factory(Architecture.parse(config.architecture), ds, net, ctx.device)

    return Setup(
        data,
        ds.denormalize(rest),
        ds.test.x,
        ds.test.y,
        ds.denormalize(ds.test.x),
        factory,
        ds.mean,
        ds.std,
    )


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _attack(config: Config, ctx: Context, setup: Setup, threat: str, count: int) -> dict:
    """Meta-train one attack (resumable), then score clean, label-flip and learned poisons."""
    attack_config = config.attack(threat, count)
    attack = PoisonAttack(
        setup.factory, setup.data, attack_config, config.victim(), setup.source_pixels
    )
    flip = attack.poisons.pixels().detach().clone()  # the label-flipping baseline (step 0)
    tb_tag = f"{threat}/{count}"

    def log(stats: Any) -> None:
        for key in ("adversarial", "clean", "success", "other_accuracy"):
            ctx.tb.add_scalar(f"{tb_tag}/{key}", getattr(stats, key), stats.step)

    attack.run(
        checkpoint=ctx.work / f"poison-{threat}-{count}.pt", on_step=log, progress=ctx.progress
    )
    learned = attack.poisons.pixels().detach()
    torch.save(learned.cpu(), ctx.work / f"poisons-{threat}-{count}.pt")
    row: dict[str, Any] = {
        "threat": threat,
        "count": count,
        "share": count / (len(setup.data.train_y) + count),
        "history": [s.adversarial for s in attack.history],
        "val_success": [s.success for s in attack.history],
    }
    for kind, pixels in (("clean", None), ("flip", flip), ("learned", learned)):
        scores = evaluate_poisons(
            setup.factory,
            setup.data,
            attack_config,
            config.victim(),
            pixels,
            setup.test_x,
            setup.test_y,
            runs=config.eval_runs,
        )
        for field in ("success", "other_accuracy", "source_accuracy", "accuracy"):
            row[f"{kind}_{field}"] = [getattr(s, field) for s, _ in scores]
    return row


def _robustness(config: Config, ctx: Context, setup: Setup, threat: str, count: int) -> dict:
    """Robustness reports of the clean and the learned-poison model of one held-out victim."""
    attack_config = config.attack(threat, count)
    learned = torch.load(ctx.work / f"poisons-{threat}-{count}.pt").to(ctx.device)
    n = config.robustness_images
    robust = RobustnessConfig(attacks=("fgsm", "pgd"), destruction_attacks=(), attack_images=n // 2)
    out = {}
    for kind, pixels in (("clean", None), ("poisoned", learned)):
        [(score, model)] = evaluate_poisons(
            setup.factory,
            setup.data,
            attack_config,
            config.victim(),
            pixels,
            setup.test_x,
            setup.test_y,
            runs=1,
        )
        report = evaluate_robustness(
            PixelModel(model, setup.mean, setup.std),
            setup.test_pixels[:n],
            setup.test_y[:n],
            robust,
        )
        out[kind] = {
            "success": score.success,
            "clean": report.clean_accuracy,
            "noise": report.noise.mean,
            "blur": report.blur.mean,
            "fgsm": report.attacks["fgsm"].mean,
            "pgd": report.attacks["pgd"].mean,
            "corruptions": report.mean_corruption_accuracy,
        }
    return out


def _describe(config: Config, n_source: int) -> str:
    """The report's paragraph on the setting."""
    v, arch = config.victim(), config.architecture
    return (
        f"Source class {config.source} -> target {config.target}; victim `{arch}` (no "
        f"normalisation, ReLU, Kaiming init) on {config.train_size} clean {config.dataset} "
        f"training images: {v.pretrain_epochs} epochs of SGD (lr {v.lr}, momentum {v.momentum}, "
        f"batch {v.batch_size}) on clean data, then {v.epochs} epoch(s) on clean data plus the "
        f"poisons, shuffled. Poisons start as source-class images labelled {config.target} (the "
        "label-flip baseline) and are learned by backpropagating through the victim's training "
        f"(white-box: {config.outer_steps} outer steps; fixed/random: "
        f"{config.unknown_outer_steps} steps of {config.unknown_meta_batch} victim trainings; "
        f"random: a pool of {config.init_pool} initialisations). Scores: share of the "
        f"{n_source} test {config.source}s classified {config.target}, and accuracy on the other "
        "test images (%), victims trained with torch.optim.SGD, held out from meta-training "
        "(white-box: the one known victim)."
    )


def _fmt(values: list[float]) -> str:
    mean, std = _mean_std(values)
    return f"{100 * mean:.1f}" if len(values) == 1 else f"{100 * mean:.1f} ± {100 * std:.1f}"


def run(config: Config, ctx: Context) -> Outcome:
    """Every (threat, count) attack, its evaluation, and the robustness of the worst one."""
    setup = _setup(config, ctx)
    units = [
        (t, c)
        for t in config.threats
        for c in (config.counts if t == "white-box" else config.unknown_counts)
    ]
    rows = []
    for threat, count in units:
        rows.append(
            ctx.memo(
                f"attack/{threat}/{count}",
                lambda t=threat, c=count: _attack(config, ctx, setup, t, c),
            )
        )
    plot_attacks(rows, config.threats, config.source, config.target, ctx.figure("poisoning.png"))
    files = [ctx.work / f"poisons-{r['threat']}-{r['count']}.pt" for r in rows]
    poison_grid(files, ctx.figure("poisons.png"))
    best = max(rows, key=lambda r: statistics.fmean(r["learned_success"]))
    robust = ctx.memo(
        f"robustness/{best['threat']}/{best['count']}",
        lambda: _robustness(config, ctx, setup, best["threat"], best["count"]),
    )

    table = [
        [
            "threat model",
            "poisons",
            "% of training set",
            "success: none",
            "success: label flip",
            "success: learned",
            "other classes: none",
            "other classes: learned",
            "victims",
        ]
    ]
    for r in rows:
        table.append(
            [
                r["threat"],
                str(r["count"]),
                f"{100 * r['share']:.2f}",
                _fmt(r["clean_success"]),
                _fmt(r["flip_success"]),
                f"**{_fmt(r['learned_success'])}**",
                _fmt(r["clean_other_accuracy"]),
                _fmt(r["learned_other_accuracy"]),
                str(len(r["learned_success"])),
            ]
        )
    rob = [
        [
            "model",
            "attack success",
            "clean acc",
            "noise (mean)",
            "blur (mean)",
            "FGSM (mean)",
            "PGD (mean)",
            "corruptions (mean)",
        ]
    ]
    for kind, v in robust.items():
        rob.append(
            [
                kind,
                f"{100 * v['success']:.1f}",
                *(
                    f"{100 * v[k]:.1f}"
                    for k in ("clean", "noise", "blur", "fgsm", "pgd", "corruptions")
                ),
            ]
        )
    v = config.victim()
    markdown = "\n".join(
        [
            _describe(config, int((setup.test_y == config.source).sum())),
            "",
            markdown_table(table[0], table[1:]),
            "",
            "![attack success](poisoning.png)",
            "",
            "Learned poisons, one row per attack in the table's order: ![poisons](poisons.png)",
            "",
            f"Robustness (evaluation module, {config.robustness_images} test images, attacks on "
            f"{config.robustness_images // 2}) of the {best['threat']} victim with "
            f"{best['count']} learned poisons against the same victim trained on clean data:",
            "",
            markdown_table(rob[0], rob[1:]),
        ]
    )
    white = [r for r in rows if r["threat"] == "white-box"]
    summary = {
        "config": asdict(config),
        "best": {
            "threat": best["threat"],
            "count": best["count"],
            "success": statistics.fmean(best["learned_success"]),
        },
        "white_box_success_at_max": statistics.fmean(white[-1]["learned_success"])
        if white
        else None,
        "robustness": robust,
    }
    return Outcome(markdown, summary, rows)


if __name__ == "__main__":
    raise SystemExit(main(NAME, Config, run, doc=__doc__))
