"""Dataset Distillation (Wang, Zhu, Torralba, Efros 2018, arXiv 1811.10959) as a baseline teacher.

Learned pixels for every inner step with fixed balanced labels, trained by plain SGD (momentum 0)
with one learned learning rate per (epoch, step): the ``steps`` batches are replayed ``epochs``
times, as in DD's "10 steps x 3 epochs" and its code (``raw_distill_lrs`` has steps * epochs
entries, softplus-parameterised, initialised at 0.02). :class:`DistilledData` is a
:class:`gtn.teacher.SyntheticTeacher`, so :class:`gtn.meta.MetaTrainer` trains it with the same
outer loop (unroll, NaN skip, grad clip, Adam, cosine decay, checkpoints of kind ``dd-meta``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gtn.curriculum import balanced_labels
from gtn.inner_loop import BatchFn
from gtn.teacher import SyntheticTeacher

#: Initial images are N(0, 1) clipped to this fraction of the half-range before ``atanh``.
_INIT_SATURATION = 0.99


@dataclass(frozen=True)
class DistillConfig:
    """What a :class:`DistilledData` is made of."""

    channels: int = 1
    """Image channels."""
    image_size: int = 28
    """Image height = width."""
    num_classes: int = 10
    """Classes; every step holds ``images_per_class`` images of each."""
    images_per_class: int = 1
    """Distilled images of each class per step."""
    steps: int = 10
    """Distinct distilled batches (inner steps per epoch)."""
    epochs: int = 3
    """Times the ``steps`` batches are replayed; ``inner_steps = steps * epochs``."""
    init_lr: float = 0.02
    """Initial learning rate of every (epoch, step); softplus-parameterised, as in DD."""
    low: tuple[float, ...] = (-1.0,)
    """Per-channel lower end of the pixel range (normalised value of pixel 0)."""
    high: tuple[float, ...] = (1.0,)
    """Per-channel upper end (normalised value of pixel 1); pixels are ``tanh``-squashed into it."""
    seed: int = 0
    """Seed of the N(0, 1) pixel initialisation."""

    def __post_init__(self) -> None:
        for name in (
            "channels",
            "image_size",
            "num_classes",
            "images_per_class",
            "steps",
            "epochs",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"DistillConfig.{name}={getattr(self, name)}: must be >= 1")
        if self.init_lr <= 0:
            raise ValueError(f"DistillConfig.init_lr={self.init_lr}: must be > 0")
        for name in ("low", "high"):
            if len(getattr(self, name)) not in (1, self.channels):
                raise ValueError(f"DistillConfig.{name}={getattr(self, name)}: expected 1 or "
                                 f"{self.channels} values")  # fmt: skip
        if any(lo >= hi for lo, hi in zip(self.low, self.high, strict=False)):
            raise ValueError(f"DistillConfig: low {self.low} must be below high {self.high}")

    @property
    def inner_steps(self) -> int:
        """Inner steps of one teaching run (``steps * epochs``)."""
        return self.steps * self.epochs

    @property
    def inner_batch(self) -> int:
        """Images per inner step (``num_classes * images_per_class``)."""
        return self.num_classes * self.images_per_class

    def to_dict(self) -> dict:
        """Plain-dict form (for checkpoints and TensorBoard)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DistillConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**data, "low": tuple(data["low"]), "high": tuple(data["high"])})


class PlainSGDSchedule(nn.Module):
    """Learned per-step learning rates (softplus of a raw parameter) and momentum fixed at 0.

    Duck-types :class:`gtn.inner_loop.LearnedSGD` for :func:`gtn.inner_loop.unroll`; with zero
    momentum its step ``p <- p - lr g`` is DD's plain SGD.
    """

    #: Step rule (``gtn.inner_loop.STEP_RULES``): the plain gradient.
    rule = "sgd"

    def __init__(self, steps: int, lr: float) -> None:
        super().__init__()
        self.raw_lr = nn.Parameter(torch.full((steps,), math.log(math.expm1(lr))))  # softplus^-1

    @property
    def steps(self) -> int:
        """Number of inner steps with a learned learning rate."""
        return self.raw_lr.shape[0]

    def lrs(self) -> torch.Tensor:
        """(steps,) positive learning rates."""
        return F.softplus(self.raw_lr)

    def momenta(self) -> torch.Tensor:
        """(steps,) zeros: no momentum."""
        return torch.zeros_like(self.raw_lr)


class DistilledData(SyntheticTeacher):
    """Learned images (steps, K * images_per_class, C, H, W) that train a learner in few steps.

    Inner step ``t`` uses batch ``t mod steps`` and its own learning rate ``lrs()[t]``. Images
    are ``center + half_range * tanh(raw_pixels)``; the initial images are N(0, 1) samples (DD's
    random init) clipped into the range, so ``raw_pixels`` starts as their ``atanh``.

    Args:
        config: Shape, schedule and initialisation.
    """

    checkpoint_kind = "dd-meta"

    def __init__(self, config: DistillConfig) -> None:
        super().__init__()
        self.config = config
        c, s, n = config.channels, config.image_size, config.num_classes * config.images_per_class
        low = torch.tensor(config.low, dtype=torch.float32).expand(c).view(1, c, 1, 1)
        high = torch.tensor(config.high, dtype=torch.float32).expand(c).view(1, c, 1, 1)
        self.register_buffer("center", (high + low) / 2, persistent=False)
        self.register_buffer("half_range", (high - low) / 2, persistent=False)
        self.register_buffer("labels", balanced_labels(n, config.num_classes), persistent=False)
        rng = torch.Generator().manual_seed(config.seed)
        x = torch.randn(config.steps, n, c, s, s, generator=rng)  # (S, N, C, H, W)
        unit = ((x - self.center) / self.half_range).clamp(-_INIT_SATURATION, _INIT_SATURATION)
        self.raw_pixels = nn.Parameter(torch.atanh(unit))
        self.schedule = PlainSGDSchedule(config.inner_steps, config.init_lr)

    def images(self, step: int | None = None) -> torch.Tensor:
        """(N, C, H, W) images of batch ``step mod steps``, or all (S, N, C, H, W) if None."""
        raw = self.raw_pixels if step is None else self.raw_pixels[step % self.config.steps]
        return self.center + self.half_range * torch.tanh(raw)

    def batches(
        self, generator: torch.Generator | None = None, *, checkpoint: bool = False
    ) -> BatchFn:
        """Step -> (images (N, C, H, W), labels (N,)); ``generator`` is unused (no sampling),
        and so is ``checkpoint`` (learned pixels have no activations to recompute)."""
        return lambda step: (self.images(step), self.labels)

    def sample_grid(self, per_class: int | None = None, seed: int = 0) -> torch.Tensor:
        """A (C, K*H, n*W) image in [0, 1], n = steps * images_per_class (``per_class`` and
        ``seed`` are ignored: every distilled image is shown): row k holds class k's images
        in step order."""
        config = self.config
        k, i, s = config.num_classes, config.images_per_class, config.steps
        with torch.no_grad():
            x = (self.images() - self.center + self.half_range) / (2 * self.half_range)
        c, h, w = x.shape[2:]
        x = x.reshape(s, i, k, c, h, w)  # batch position j * K + k holds class k
        return x.clamp(0, 1).permute(3, 2, 4, 0, 1, 5).reshape(c, k * h, s * i * w).cpu()
