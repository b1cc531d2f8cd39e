"""The training recipe as a frozen dataclass: :class:`TrainConfig`, whose defaults are
MetaQNN's (Baker et al. 2017) exactly, and the checks that reject a bad value by name.
:mod:`metaqnn.core.training` trains with it (and re-exports it)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from metaqnn.core.optim import OPTIMIZERS, SCHEDULES
from metaqnn.core.precision import PRECISIONS
from metaqnn.errors import ConfigError


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _positive_int(v: Any) -> bool:
    return _count(v) and v > 0


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _one_of(choices: dict[str, Any]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and v in choices


def _betas(v: Any) -> bool:
    return isinstance(v, tuple) and len(v) == 2 and all(_number(b) and 0 <= b < 1 for b in v)


#: Field -> (check, what was expected), applied by ``TrainConfig.__post_init__``.
_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "epochs": (_positive_int, "a positive integer"),
    "steps": (lambda v: v is None or _positive_int(v), "None or a positive integer"),
    "batch_size": (_positive_int, "a positive integer"),
    "lr": (lambda v: _number(v) and v > 0, "a positive number"),
    "betas": (_betas, "two numbers in [0, 1)"),
    "eps": (lambda v: _number(v) and v > 0, "a positive number"),
    "weight_decay": (lambda v: _number(v) and v >= 0, "a non-negative number"),
    "optimizer": (_one_of(OPTIMIZERS), f"one of {', '.join(OPTIMIZERS)}"),
    "momentum": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "nesterov": (lambda v: isinstance(v, bool), "True or False"),
    "lr_decay": (lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "lr_decay_epochs": (_positive_int, "a positive integer"),
    "schedule": (_one_of(SCHEDULES), f"one of {', '.join(SCHEDULES)}"),
    "warmup_epochs": (lambda v: v is None or (_number(v) and v >= 0), "None or a number >= 0"),
    "label_smoothing": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "max_restarts": (_count, "a non-negative integer"),
    "restart_lr_factor": (lambda v: _number(v) and v > 0, "a positive number"),
    "late_restarts": (lambda v: isinstance(v, bool), "True or False"),
    "chance_tolerance": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "eval_batch_size": (_positive_int, "a positive integer"),
    "precision": (_one_of(PRECISIONS), f"one of {', '.join(PRECISIONS)}"),
    "seed": (_count, "a non-negative integer"),
}


@dataclass(frozen=True)
class TrainConfig:
    """A training recipe; the defaults are MetaQNN's (Baker et al. 2017) exactly."""

    epochs: int = 20
    """Passes over the training split per attempt (ignored when ``steps`` is set)."""
    steps: int | None = None
    """A budget of optimizer steps per attempt instead of ``epochs`` (the last pass may be
    partial)."""
    batch_size: int = 128
    """Training mini-batch size."""
    lr: float = 1e-3
    """Initial learning rate (the peak of ``"cosine"`` and ``"onecycle"``)."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam's and AdamW's betas."""
    eps: float = 1e-8
    """Adam's and AdamW's epsilon."""
    weight_decay: float = 5e-4
    """Weight decay: an L2 penalty added to the gradient for Adam (as Caffe's) and SGD,
    decoupled for AdamW."""
    optimizer: str = "adam"
    """A key of :data:`metaqnn.core.optim.OPTIMIZERS`: ``"adam"``, ``"adamw"`` or ``"sgd"``."""
    momentum: float = 0.9
    """SGD's momentum."""
    nesterov: bool = True
    """Whether SGD's momentum is Nesterov's (needs ``momentum > 0``)."""
    lr_decay: float = 0.2
    """Factor applied to the learning rate every ``lr_decay_epochs`` epochs."""
    lr_decay_epochs: int = 5
    """Epochs between learning-rate decays."""
    schedule: str = "step"
    """A key of :data:`metaqnn.core.optim.SCHEDULES`: ``"step"`` (decay by ``lr_decay`` every
    ``lr_decay_epochs`` epochs), or ``"cosine"`` / ``"onecycle"`` (set every optimizer step over
    the whole budget of an attempt)."""
    warmup_epochs: float | None = None
    """Epochs (may be fractional) of warmup at the start of each attempt; None is the
    schedule's default (none, or 30% of the budget for ``"onecycle"``)."""
    label_smoothing: float = 0.0
    """Label smoothing of the training loss (validation losses are plain cross-entropy)."""
    max_restarts: int = 5
    """Restarts allowed for a model at chance (or diverged) after its first epoch."""
    restart_lr_factor: float = 0.4
    """Factor applied to the initial learning rate at each restart."""
    late_restarts: bool = False
    """Also restart, while restarts remain, when the loss diverges after the first epoch (the
    peak of a warmup schedule, say); MetaQNN's recipe ends such a run as diverged."""
    chance_tolerance: float = 0.02
    """A model is at chance when its validation accuracy after the first epoch is below
    ``1 / classes + chance_tolerance`` (or its loss is not finite)."""
    eval_batch_size: int = 1000
    """Batch size of evaluation (no gradients, so larger)."""
    precision: str = "fp32"
    """``"fp32"``, or ``"bf16"`` autocast of the training passes (metaqnn.core.precision)."""
    seed: int = 0
    """Root seed of initialisation, dropout and shuffling."""

    def __post_init__(self) -> None:
        if isinstance(self.betas, list):  # e.g. read back from JSON
            object.__setattr__(self, "betas", tuple(self.betas))
        for name, (check, expected) in _CHECKS.items():
            value = getattr(self, name)
            if not check(value):
                raise ConfigError(f"TrainConfig.{name}={value!r}: expected {expected}")
        if self.optimizer == "sgd" and self.nesterov and self.momentum == 0:
            raise ConfigError(
                f"TrainConfig.momentum={self.momentum!r}: Nesterov SGD needs a momentum > 0"
            )
