"""Dataset Distillation (Wang, Zhu, Torralba, Efros 2018, arXiv 1811.10959) as a baseline teacher.

Learned pixels for every inner step with fixed balanced labels, trained by plain SGD (momentum 0)
with one learned learning rate per (epoch, step): the ``steps`` batches are replayed ``epochs``
times, as in DD's "10 steps x 3 epochs" and its code (``raw_distill_lrs`` has steps * epochs
entries, softplus-parameterised, initialised at 0.02). :class:`DistilledData` offers the part of
:class:`gtn.teacher.GTNTeacher`'s interface that :class:`gtn.meta.MetaTrainer` uses, so the same
outer loop (unroll, NaN skip, grad clip, Adam, cosine decay) trains it; :class:`DistillTrainer`
only swaps the logging and the checkpoint labels, which in ``meta.py`` assume a generator.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gtn.curriculum import balanced_labels
from gtn.inner_loop import BatchFn, UnrollResult, model_params, unroll
from gtn.meta import FORMAT_VERSION, MetaTrainer, StepRecord

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


class DistilledData(nn.Module):
    """Learned images (steps, K * images_per_class, C, H, W) that train a learner in few steps.

    Inner step ``t`` uses batch ``t mod steps`` and its own learning rate ``lrs()[t]``. Images
    are ``center + half_range * tanh(raw_pixels)``; the initial images are N(0, 1) samples (DD's
    random init) clipped into the range, so ``raw_pixels`` starts as their ``atanh``.

    Args:
        config: Shape, schedule and initialisation.
    """

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

    def batches(self, generator: torch.Generator | None = None) -> BatchFn:
        """Step -> (images (N, C, H, W), labels (N,)); ``generator`` is unused (no sampling)."""
        return lambda step: (self.images(step), self.labels)

    def unroll(
        self,
        learner: nn.Module,
        steps: int | None = None,
        *,
        generator: torch.Generator | None = None,
        create_graph: bool = True,
        truncate: int | None = None,
        keep_steps: frozenset[int] = frozenset(),
    ) -> UnrollResult:
        """Unroll the inner loop on ``learner``'s current parameters (they are not changed)."""
        params, buffers = model_params(learner)
        return unroll(
            learner, params, buffers, self.batches(generator), self.schedule,
            steps or self.config.inner_steps, create_graph=create_graph, truncate=truncate,
            keep_steps=keep_steps,
        )  # fmt: skip

    def teach(self, learner: nn.Module, steps: int | None = None, *, seed: int = 0) -> nn.Module:
        """Train ``learner`` in place for ``steps`` inner steps (default: all) and return it.

        The distilled data are left unchanged. ``seed`` is accepted for parity with
        :meth:`GTNTeacher.teach`; distilled data draw nothing at random.
        """
        result = self.unroll(learner, steps, create_graph=False)
        with torch.no_grad():
            for name, param in learner.named_parameters():
                param.copy_(result.params[name])
        return learner


def distilled_grid(data: DistilledData) -> torch.Tensor:
    """A (C, K*H, n*W) image in [0, 1], n = steps * images_per_class: row k holds class k's
    images in step order."""
    config = data.config
    k, i, s = config.num_classes, config.images_per_class, config.steps
    with torch.no_grad():
        x = (data.images() - data.center + data.half_range) / (2 * data.half_range)
    c, h, w = x.shape[2:]
    x = x.reshape(s, i, k, c, h, w)  # batch position j * K + k holds class k
    return x.clamp(0, 1).permute(3, 2, 4, 0, 1, 5).reshape(c, k * h, s * i * w).cpu()


class DistillTrainer(MetaTrainer):
    """:class:`gtn.meta.MetaTrainer` for :class:`DistilledData`: the same outer step, DD's own
    TensorBoard images and checkpoints of kind ``"dd-meta"`` (keys ``config``, ``state``)."""

    teacher: DistilledData

    def _log(self, record: StepRecord) -> None:
        writer, step = self._writer, record.step
        if writer is None:
            return
        if step % self.config.log_every == 0 or record.skipped:
            loss = record.meta_loss if math.isfinite(record.meta_loss) else -1
            writer.add_scalar("meta/loss", loss, step)
            writer.add_scalar("meta/learner_accuracy", record.accuracy, step)
            writer.add_scalar("meta/outer_lr", record.outer_lr, step)
            writer.add_scalar("meta/skipped_steps", sum(r.skipped for r in self.history), step)
            writer.add_histogram("schedule/lr", self.teacher.schedule.lrs().detach(), step)
        if (step + 1) % self.config.checkpoint_every == 0:
            writer.add_image("samples/distilled", distilled_grid(self.teacher), step)

    def state(self) -> dict[str, Any]:
        """The checkpoint dict (plain values and tensors only)."""
        state = super().state()
        state.update(kind="dd-meta", config=state.pop("teacher_config"), state=state.pop("teacher"))
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore data, optimiser, scheduler, step, history and RNG from a checkpoint dict."""
        super().load_state({**state, "teacher": state["state"]})


def load_distill_checkpoint(
    path: str | os.PathLike[str], map_location: Any = "cpu"
) -> dict[str, Any]:
    """Read a :class:`DistillTrainer` checkpoint with ``weights_only=True`` and check its format.

    Raises:
        ValueError: One line naming the path and what is wrong with it.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such distillation checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch.load raises many unrelated types on corrupt files
        raise ValueError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("kind") != "dd-meta":
        raise ValueError(f"{path}: not a dataset-distillation checkpoint (kind 'dd-meta')")
    if state.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format version {state.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    missing = {"config", "state", "meta_config", "optimizer", "scheduler", "step"} - set(state)
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {sorted(missing)}")
    return state


def distilled_from_checkpoint(
    state: dict[str, Any], device: torch.device | str = "cpu"
) -> DistilledData:
    """Rebuild the trained :class:`DistilledData` of a checkpoint dict."""
    data = DistilledData(DistillConfig.from_dict(state["config"])).to(device)
    data.load_state_dict(state["state"])
    return data
