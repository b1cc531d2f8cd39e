"""The learned optimizer on a dataset: its meta-training task (clean training images, a
Gaussian-noise validation loss) and its evaluation against learning-rate-tuned Adam, inner-trained
on clean and on noisy data, with the evaluation module (noise levels, held-out corruptions).

Every trained model sees the same batches for the same seed
(:func:`metaqnn.learned_optimizer.es.batch_indices`), whichever optimizer trains it; noise is drawn
in [0, 1] pixel space (``clip(x + sigma z)``) and the images normalised again.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from metaqnn.core.data import Dataset, Split
from metaqnn.errors import ConfigError
from metaqnn.evaluation.corruptions import CORRUPTIONS, gaussian_noise
from metaqnn.evaluation.pixels import PixelModel
from metaqnn.evaluation.robustness import RobustnessConfig, evaluate_robustness
from metaqnn.learned_optimizer.es import LOptTask, batch_indices, derived_seed
from metaqnn.learned_optimizer.optimizer import LearnedOptimizer, LOptConfig, SmallConvNet, Tensors
from metaqnn.markdown import markdown_table


@dataclass(frozen=True)
class InnerModelConfig:
    """The inner model: the paper's 4-layer CNN at reduced width."""

    channels: tuple[int, ...] = (8, 8, 16, 16)
    """Conv channels (the paper's 32, 32, 64, 64 divided by 4)."""
    strides: tuple[int, ...] = (2, 2, 1, 1)
    """Conv strides (the paper's)."""

    def __post_init__(self) -> None:
        if len(self.channels) != len(self.strides) or not self.channels:
            raise ConfigError(
                f"inner model: channels {self.channels!r} and strides {self.strides!r} must be "
                "non-empty and of equal length"
            )
        if min(self.channels) < 1 or min(self.strides) < 1:
            raise ConfigError(f"inner model: channels {self.channels!r} and strides "
                              f"{self.strides!r} must be positive")  # fmt: skip


def model_factory(
    data: Dataset, config: InnerModelConfig, device: torch.device | str = "cpu"
) -> Callable[[int], nn.Module]:
    """Seed -> a freshly initialised inner model for ``data``, on ``device``."""
    channels, classes = data.spec.channels, data.spec.num_classes

    def make(seed: int) -> nn.Module:
        gen = torch.Generator().manual_seed(seed)
        return SmallConvNet(channels, classes, config.channels, config.strides, gen).to(device)

    return make


def noise_corruption(
    data: Dataset, sigma: float
) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """(normalised images, CPU generator) -> the same images with pixel noise ``sigma``."""
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ConfigError(f"noise sigma must be a non-negative number, got {sigma!r}")

    def apply(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return data.normalize(gaussian_noise(data.denormalize(x), sigma, gen))

    return apply


def build_task(
    data: Dataset, model: InnerModelConfig, noise: float, device: torch.device | str = "cpu"
) -> LOptTask:
    """The meta-training task: clean training split, validation split under pixel noise."""
    return LOptTask(
        model_factory=model_factory(data, model, device),
        train_x=data.train.x,
        train_y=data.train.y,
        val_x=data.val.x,
        val_y=data.val.y,
        corrupt=noise_corruption(data, noise),
    )


# ------------------------------------------------------------------ optimizers
OptimizerFactory = Callable[[Iterable[torch.Tensor]], torch.optim.Optimizer]


def adam(lr: float) -> OptimizerFactory:
    """Adam (0.9, 0.999, 1e-8) at ``lr``."""
    return lambda params: torch.optim.Adam(params, lr=lr)


def learned(theta: Tensors, config: LOptConfig) -> OptimizerFactory:
    """The learned optimizer with weights ``theta``."""
    return lambda params: LearnedOptimizer(params, theta, config)


def train_inner(
    model: nn.Module,
    make_optimizer: OptimizerFactory,
    train: Split,
    *,
    steps: int,
    batch_size: int,
    run_seed: int,
    corrupt: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    probe: Callable[[int], None] | None = None,
) -> list[float]:
    """Train ``model`` for ``steps`` steps on batches of ``train`` (the ES's sampler).

    Args:
        model: The model (trained in place).
        make_optimizer: Parameters -> optimizer.
        train: Training split (normalised).
        steps: Optimizer steps.
        batch_size: Images per step.
        run_seed: Seeds the batch order (the same seed gives the same batches).
        corrupt: Applied to every training batch (noisy-data training), or None.
        probe: Called with the number of steps taken after every step (measurements).

    Returns:
        The training loss of every step.
    """
    opt = make_optimizer(model.parameters())
    gen = torch.Generator().manual_seed(derived_seed(run_seed, 5))
    losses = []
    model.train()
    for t in range(steps):
        index = batch_indices(len(train), batch_size, run_seed, t).to(train.x.device)
        x, y = train.x[index], train.y[index]
        if corrupt is not None:
            x = corrupt(x, gen)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.detach())  # no host sync per step
        if probe is not None:
            probe(t + 1)
    return torch.stack(losses).tolist() if losses else []


@torch.no_grad()
def noisy_loss(
    model: nn.Module, split: Split, data: Dataset, sigma: float, *, draws: int = 4, seed: int = 0
) -> float:
    """Mean cross-entropy of ``model`` on ``split`` under pixel noise ``sigma`` (mean over
    ``draws`` noise draws; one for sigma 0)."""
    model.eval()
    corrupt = noise_corruption(data, sigma)
    gen = torch.Generator().manual_seed(seed)
    total = [
        float(F.cross_entropy(model(corrupt(split.x, gen)), split.y))
        for _ in range(draws if sigma > 0 else 1)
    ]
    model.train()
    value = sum(total) / len(total)
    return value if math.isfinite(value) else float("inf")


# ------------------------------------------------------------------ the comparison
@dataclass(frozen=True)
class ComparisonConfig:
    """How optimizers are compared."""

    steps: int = 200
    """Inner training steps of every model."""
    batch_size: int = 64
    """Training images per step."""
    noise: float = 0.05
    """Pixel noise of the validation loss (the meta-training corruption)."""
    adam_lrs: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1)
    """Adam's learning-rate grid."""
    tune_seeds: tuple[int, ...] = (100, 101, 102)
    """Models (initialisation and batches) the Adam learning rate is tuned on."""
    eval_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """Models every optimizer is evaluated on (not those of meta-training or tuning)."""
    test_noise: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3)
    """Pixel noise levels of the test-set measurements."""
    corruptions: tuple[str, ...] = tuple(c for c in CORRUPTIONS if c != "gaussian_noise")
    """Held-out corruptions (test-set accuracy, mean over severities 1 to 5)."""
    draws: int = 4
    """Noise draws per noisy-loss measurement."""
    curve_every: int = 0
    """Also measure the noisy validation loss every this many steps (one draw) and report its
    mean over the run: the truncated ES objective (0: off)."""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.draws < 1 or self.curve_every < 0:
            raise ConfigError(f"steps={self.steps}, batch_size={self.batch_size} and "
                              f"draws={self.draws} must be positive")  # fmt: skip
        if not self.adam_lrs or min(self.adam_lrs) <= 0:
            raise ConfigError(f"adam_lrs={self.adam_lrs!r}: need positive learning rates")
        if not self.tune_seeds or not self.eval_seeds:
            raise ConfigError("tune_seeds and eval_seeds must not be empty")
        if set(self.tune_seeds) & set(self.eval_seeds):
            raise ConfigError(f"tune_seeds {self.tune_seeds} and eval_seeds {self.eval_seeds} "
                              "must differ")  # fmt: skip
        for name in self.corruptions:
            if name not in CORRUPTIONS:
                raise ConfigError(f"unknown corruption {name!r}; choose from "
                                  f"{', '.join(CORRUPTIONS)}")  # fmt: skip


def _model_seed(seed: int) -> int:
    return derived_seed(seed, 6)


def tune_adam(
    data: Dataset,
    make_model: Callable[[int], nn.Module],
    config: ComparisonConfig,
    *,
    noisy_training: bool,
) -> tuple[float, dict[float, float]]:
    """Adam's learning rate with the lowest mean noisy-validation loss over the tuning seeds.

    Returns:
        The best learning rate and the mean loss of every learning rate.
    """
    corrupt = noise_corruption(data, config.noise) if noisy_training else None
    scores: dict[float, float] = {}
    for lr in config.adam_lrs:
        losses = []
        for seed in config.tune_seeds:
            model = make_model(_model_seed(seed))
            train_inner(model, adam(lr), data.train, steps=config.steps,
                        batch_size=config.batch_size, run_seed=seed, corrupt=corrupt)  # fmt: skip
            losses.append(noisy_loss(model, data.val, data, config.noise, draws=config.draws))
        scores[lr] = sum(losses) / len(losses)
    best = min(scores, key=lambda lr: scores[lr])
    return best, scores


def measure(model: nn.Module, data: Dataset, config: ComparisonConfig) -> dict[str, Any]:
    """The numbers of one trained model: noisy validation loss (the meta-objective), test loss
    and accuracy at each noise level, held-out corruption accuracies."""
    row: dict[str, Any] = {
        "val_noisy_loss": noisy_loss(model, data.val, data, config.noise, draws=config.draws),
        "val_clean_loss": noisy_loss(model, data.val, data, 0.0),
    }
    for sigma in config.test_noise:
        row[f"test_loss@{sigma:g}"] = noisy_loss(model, data.test, data, sigma, draws=config.draws)
    pixel_model = PixelModel(model, data.mean, data.std)
    report = evaluate_robustness(
        pixel_model,
        data.denormalize(data.test.x).clamp(0, 1),
        data.test.y,
        RobustnessConfig(
            noise_strengths=config.test_noise,
            blur_strengths=(0.0,),
            attacks=(),
            corruptions=config.corruptions,
            destruction_attacks=(),
            examples=0,
        ),
    )
    for sigma, acc in zip(report.noise.strengths, report.noise.accuracies, strict=True):
        row[f"test_acc@{sigma:g}"] = acc
    for name, curve in report.corruptions.items():
        row[f"corruption/{name}"] = curve.mean
    row["corruption/mean"] = report.mean_corruption_accuracy
    return row


def compare(
    data: Dataset,
    make_model: Callable[[int], nn.Module],
    optimizers: dict[str, tuple[OptimizerFactory, bool]],
    config: ComparisonConfig,
) -> dict[str, list[dict[str, Any]]]:
    """Train one model per evaluation seed with every optimizer and measure it.

    Args:
        data: The dataset.
        make_model: Seed -> fresh model.
        optimizers: Name -> (optimizer factory, whether it trains on noisy images).
        config: Steps, seeds and measurements.

    Returns:
        Name -> one row of :func:`measure` per evaluation seed (plus ``seed``).
    """
    corrupt = noise_corruption(data, config.noise)
    out: dict[str, list[dict[str, Any]]] = {}
    for name, (make_optimizer, noisy) in optimizers.items():
        rows = []
        for seed in config.eval_seeds:
            model = make_model(_model_seed(seed))
            curve: list[float] = []

            def probe(t: int, model: nn.Module = model, curve: list[float] = curve) -> None:
                if config.curve_every and t % config.curve_every == 0:
                    curve.append(noisy_loss(model, data.val, data, config.noise, draws=1, seed=t))

            losses = train_inner(model, make_optimizer, data.train, steps=config.steps,
                                 batch_size=config.batch_size, run_seed=seed,
                                 corrupt=corrupt if noisy else None, probe=probe)  # fmt: skip
            row = {"seed": seed, "final_train_loss": losses[-1], **measure(model, data, config)}
            if curve:
                row["val_noisy_curve_mean"] = sum(curve) / len(curve)
            rows.append(row)
        out[name] = rows
    return out


def summarize(rows: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Key -> (mean, standard deviation over seeds) of numeric row values."""
    keys = [k for k in rows[0] if k != "seed"]
    out = {}
    for key in keys:
        values = [float(r[key]) for r in rows]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        out[key] = (statistics.fmean(values), spread)
    return out


@dataclass(frozen=True)
class PairedDifference:
    """``a - b`` of one measurement over the seeds both were trained on (same initialisation
    and batches per seed), for a paired comparison of two optimizers."""

    mean: float
    std: float
    """Standard deviation of the per-seed differences."""
    sem: float
    """Standard error of the mean difference (``std / sqrt(n)``)."""
    wins: int
    """Seeds on which ``a`` is lower."""
    n: int


def paired_difference(
    a: list[dict[str, Any]], b: list[dict[str, Any]], key: str = "val_noisy_loss"
) -> PairedDifference:
    """The per-seed differences ``a[key] - b[key]`` of two optimizers' rows (matched by
    ``seed``).

    Raises:
        ValueError: The rows do not cover the same seeds.
    """
    by_seed = {r["seed"]: float(r[key]) for r in b}
    if sorted(by_seed) != sorted(r["seed"] for r in a):
        raise ValueError(f"paired_difference: seeds {sorted(r['seed'] for r in a)} and "
                         f"{sorted(by_seed)} differ")  # fmt: skip
    diffs = [float(r[key]) - by_seed[r["seed"]] for r in a]
    std = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
    return PairedDifference(statistics.fmean(diffs), std, std / math.sqrt(len(diffs)),
                            sum(d < 0 for d in diffs), len(diffs))  # fmt: skip


# ------------------------------------------------------------------ a run's evaluation
#: The optimizers of the comparison, in table order: name -> description.
METHODS = {
    "learned": "learned optimizer, clean training",
    "adam_clean": "Adam (tuned lr), clean training",
    "adam_noisy": "Adam (tuned lr), noisy training",
}


@dataclass
class RunEvaluation:
    """The comparison of a meta-trained optimizer with tuned Adam.

    Attributes:
        config: How they were compared.
        adam_lr: ``adam_clean`` / ``adam_noisy`` -> the tuned learning rate.
        adam_scores: The same keys -> lr -> mean noisy-validation loss on the tuning seeds.
        rows: Method (a key of :data:`METHODS`) -> one measured row per evaluation seed.
        seconds: Wall-clock seconds of tuning and of the comparison.
    """

    config: ComparisonConfig
    adam_lr: dict[str, float]
    adam_scores: dict[str, dict[float, float]]
    rows: dict[str, list[dict[str, Any]]]
    seconds: dict[str, float]

    def summary(self) -> dict[str, dict[str, tuple[float, float]]]:
        """Method -> key -> (mean, std over seeds)."""
        return {name: summarize(rows) for name, rows in self.rows.items()}

    def paired(self, key: str = "val_noisy_loss") -> dict[str, PairedDifference]:
        """Other method -> the learned optimizer's paired difference to it on ``key``."""
        if "learned" not in self.rows:
            return {}
        return {n: paired_difference(self.rows["learned"], rows, key)
                for n, rows in self.rows.items() if n != "learned"}  # fmt: skip

    def markdown(self) -> str:
        """Tables: the meta-objective, test loss and accuracy under noise, corruptions."""
        s, c = self.summary(), self.config
        label = {
            name: METHODS[name] + (f" {self.adam_lr[name]:g}" if name in self.adam_lr else "")
            for name in self.rows
        }
        fmt = lambda v, d=4: f"{v[0]:.{d}f} ± {v[1]:.{d}f}"  # noqa: E731
        head = f"{len(c.eval_seeds)} models each, {c.steps} steps of {c.batch_size}"
        curve = all("val_noisy_curve_mean" in s[n] for n in self.rows)
        lines = [
            f"Meta-objective: validation loss under pixel noise {c.noise:g} ({head}; mean ± std)",
            "",
            markdown_table(
                ["optimizer", f"noisy val loss ({c.noise:g})", "clean val loss", "train loss"]
                + ([f"noisy val loss, mean every {c.curve_every} steps"] if curve else []),
                [
                    [
                        label[n],
                        fmt(s[n]["val_noisy_loss"]),
                        fmt(s[n]["val_clean_loss"]),
                        fmt(s[n]["final_train_loss"]),
                    ]
                    + ([fmt(s[n]["val_noisy_curve_mean"])] if curve else [])
                    for n in self.rows
                ],
            ),
            "",
            *self._paired_lines(label),
            "Test set under pixel noise: loss / accuracy",
            "",
            markdown_table(
                ["optimizer", *(f"sigma {x:g}" for x in c.test_noise)],
                [
                    [
                        label[n],
                        *(
                            f"{s[n][f'test_loss@{x:g}'][0]:.3f} / "
                            f"{100 * s[n][f'test_acc@{x:g}'][0]:.1f} %"
                            for x in c.test_noise
                        ),
                    ]
                    for n in self.rows
                ],
            ),
            "",
            "Held-out corruptions: test accuracy %, mean over severities 1-5",
            "",
            markdown_table(
                ["corruption", *(label[n] for n in self.rows)],
                [
                    [name, *(f"{100 * s[n][f'corruption/{name}'][0]:.1f}" for n in self.rows)]
                    for name in (*c.corruptions, "mean")
                ],
            ),
        ]
        for name, scores in self.adam_scores.items():
            grid = ", ".join(f"{lr:g}: {v:.4f}" for lr, v in scores.items())
            lines += ["", f"{METHODS[name]}: noisy val loss per lr on the tuning seeds: {grid}"]
        return "\n".join(lines)

    def _paired_lines(self, label: dict[str, str]) -> list[str]:
        """The paired table of the noisy validation loss (empty without a learned row)."""
        paired = self.paired()
        if not paired:
            return []
        rows = [[f"learned - {label[n]}", f"{d.mean:+.4f} ± {d.std:.4f}", f"{d.sem:.4f}",
                 f"{d.wins} of {d.n}"] for n, d in paired.items()]  # fmt: skip
        return [
            "Paired by seed (each seed: the same initialisation and batches for every "
            "optimizer): difference of the noisy val loss, learned minus the other",
            "",
            markdown_table(["difference", "mean ± std", "sem", "learned lower on"], rows),
            "",
        ]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunEvaluation:
        """The evaluation of :meth:`to_dict`'s values."""
        config = dict(values["config"])
        for key in ("adam_lrs", "tune_seeds", "eval_seeds", "test_noise", "corruptions"):
            config[key] = tuple(config[key])
        scores = {k: {float(lr): v for lr, v in d.items()} for k, d in
                  values["adam_scores"].items()}  # fmt: skip
        return cls(ComparisonConfig(**config), dict(values["adam_lr"]), scores,
                   values["rows"], dict(values["seconds"]))  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {
            "config": asdict(self.config),
            "adam_lr": self.adam_lr,
            "adam_scores": {
                k: {str(lr): v for lr, v in d.items()} for k, d in self.adam_scores.items()
            },
            "summary": {n: {k: list(v) for k, v in d.items()} for n, d in self.summary().items()},
            "paired_val_noisy_loss": {n: asdict(d) for n, d in self.paired().items()},
            "rows": self.rows,
            "seconds": self.seconds,
        }


def evaluate_run(
    state: dict[str, Any],
    data: Dataset,
    config: ComparisonConfig,
    device: torch.device | str = "cpu",
    *,
    make_model: Callable[[int], nn.Module] | None = None,
    initial: bool = False,
) -> RunEvaluation:
    """Compare a meta-trained optimizer (a checkpoint dict of
    :mod:`metaqnn.learned_optimizer.es`) with Adam tuned on the same noisy-validation loss, trained
    on clean and on noisy images.

    Args:
        state: The checkpoint dict.
        data: Its dataset (same validation split as meta-training).
        config: Steps, seeds, measurements.
        device: Where models train.
        make_model: Seed -> model (default: the run's inner model).
        initial: Evaluate the weights the run started from instead of its meta-trained ones
            (what ES added).
    """
    import time

    from metaqnn.learned_optimizer.es import es_config_from, lopt_config_from
    from metaqnn.learned_optimizer.optimizer import init_theta

    extra = state["extra"]
    if make_model is None:
        inner = InnerModelConfig(tuple(extra["channels"]), tuple(extra["strides"]))
        make_model = model_factory(data, inner, device)
    t0 = time.perf_counter()
    adam_lr, adam_scores = {}, {}
    for name, noisy in (("adam_clean", False), ("adam_noisy", True)):
        adam_lr[name], adam_scores[name] = tune_adam(data, make_model, config, noisy_training=noisy)
    t1 = time.perf_counter()
    theta = state["theta"]
    if initial:
        es = es_config_from(state)
        theta = init_theta(lopt_config_from(state), seed=es.seed, kind=es.theta_init)
    theta = {k: v.to(device) for k, v in theta.items()}
    optimizers = {
        "learned": (learned(theta, lopt_config_from(state)), False),
        "adam_clean": (adam(adam_lr["adam_clean"]), False),
        "adam_noisy": (adam(adam_lr["adam_noisy"]), True),
    }
    rows = compare(data, make_model, optimizers, config)
    seconds = {"tune_adam": t1 - t0, "compare": time.perf_counter() - t1}
    return RunEvaluation(config, adam_lr, adam_scores, rows, seconds)
