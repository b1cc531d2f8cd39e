"""Comparing optimizers on a dataset: an optimizer trains a fresh inner model with the ES's
batch sampler (:func:`train_inner`), Adam's learning rate is tuned on the noisy validation loss
(:func:`tune_adam`), and every trained model is measured (:func:`measure`: noisy validation
loss, test loss and accuracy under pixel noise, held-out corruptions) on the evaluation seeds
(:func:`compare`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from metaqnn.core.data import Dataset, Split
from metaqnn.errors import ConfigError
from metaqnn.evaluation.corruptions import CORRUPTIONS
from metaqnn.evaluation.pixels import PixelModel
from metaqnn.evaluation.robustness import RobustnessConfig, evaluate_robustness
from metaqnn.learned_optimizer.optimizer import LearnedOptimizer, LOptConfig, Tensors
from metaqnn.learned_optimizer.task import batch_indices, derived_seed, noise_corruption

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
