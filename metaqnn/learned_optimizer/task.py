"""What the learned optimizer is meta-trained on: the task (:class:`LOptTask`: an inner model
factory, clean training images and a corrupted validation loss), built for a dataset by
:func:`build_task` (the paper's small CNN as the inner model, Gaussian pixel noise as the
corruption), and the seeded batch sampler that ES and the evaluation share.

Every trained model sees the same batches for the same seed (:func:`batch_indices`), whichever
optimizer trains it; noise is drawn in [0, 1] pixel space (``clip(x + sigma z)``) and the images
normalised again.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from metaqnn.core.data import Dataset
from metaqnn.errors import ConfigError
from metaqnn.evaluation.corruptions import gaussian_noise
from metaqnn.learned_optimizer.optimizer import SmallConvNet


@dataclass
class LOptTask:
    """What the optimizer is meta-trained on (tensors on one device, normalised images).

    Attributes:
        model_factory: Seed -> a fresh inner model on the tensors' device.
        train_x: (N, C, H, W) clean training images.
        train_y: (N,) their labels.
        val_x: (M, C, H, W) clean validation images.
        val_y: (M,) their labels.
        corrupt: (images, CPU generator) -> corrupted images of the same shape (the
            validation corruption of the meta-loss).
    """

    model_factory: Callable[[int], nn.Module]
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    corrupt: Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def derived_seed(*parts: int) -> int:
    """A seed mixed from integers (stable across runs and platforms)."""
    value = 0x9E3779B9
    for part in parts:
        value = (value * 1_000_003 + int(part) * 7_919 + 17) % (2**61 - 1)
    return value


def batch_indices(n: int, batch_size: int, run_seed: int, step: int) -> torch.Tensor:
    """The training-image indices (batch_size,) of inner step ``step`` of the inner run seeded
    ``run_seed`` (drawn with replacement; the same for ES and for evaluation)."""
    gen = torch.Generator().manual_seed(derived_seed(run_seed, step, 1))
    return torch.randint(n, (batch_size,), generator=gen)


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
