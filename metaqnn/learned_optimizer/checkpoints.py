"""A learned optimizer's meta-training run: its configuration (:class:`ESConfig`, the outer loop
of :mod:`metaqnn.learned_optimizer.es`) and its checkpoint files: the format, reading one back
with its checks (:func:`load_lopt_checkpoint`), and the configs a checkpoint was made with.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from metaqnn.learned_optimizer.optimizer import THETA_INITS, LOptConfig

FORMAT_VERSION = 1
CHECKPOINT_KIND = "lopt-es"
CHECKPOINT_NAME = "checkpoint.pt"


class CheckpointError(ValueError):
    """A learned-optimizer checkpoint that is missing, unreadable, of another kind or format
    version, or incomplete."""


@dataclass(frozen=True)
class ESConfig:
    """The outer loop: antithetic ES over truncated unrolls."""

    outer_steps: int = 300
    """Outer (meta) steps."""
    pairs: int = 8
    """Antithetic pairs per outer step (2 * pairs + 1 unrolls with the unperturbed one)."""
    sigma: float = 0.01
    """Standard deviation of the perturbations of ``theta``."""
    outer_lr: float = 0.003
    """Adam learning rate on ``theta``."""
    truncation: int = 20
    """Inner steps per outer step (the truncated unroll)."""
    inner_steps: int = 200
    """Length of one inner training run; then a fresh model starts."""
    burn_in: int = 0
    """Inner steps at the start of every inner run taken by the unperturbed optimizer alone,
    without an ES estimate (0: every truncation is scored). Truncated ES scores the loss at the
    end of each truncation, i.e. the loss averaged along the run, dominated by the early
    truncations; the evaluation's target is the loss at the end of the run. With ``burn_in =
    inner_steps - truncation`` ES scores only the final truncation, with every step before it
    still taken by the current optimizer."""
    batch_size: int = 64
    """Training images per inner step."""
    val_batch: int = 256
    """Corrupted validation images scoring each unroll."""
    max_loss: float = 10.0
    """Meta-losses are clipped to this (a diverged or NaN unroll scores this)."""
    log_loss: bool = True
    """Estimate the gradient of the log of the meta-loss (relative changes). Truncations early
    in an inner run have losses several times larger than late ones (digits: about 1.9 after 20
    steps, 0.25 after 200); on the raw loss their differences dominate the estimate, so ES
    mostly tunes the start of a run."""
    theta_init: str = "random"
    """How ``theta`` starts (a key of ``metaqnn.learned_optimizer.optimizer.THETA_INITS``)
    when none is given."""
    vmap: bool = True
    """Unroll the population in one ``torch.func.vmap`` call (False: one after another; the
    same numbers, for models vmap cannot batch)."""
    seed: int = 0
    """Seed of perturbations, batches, corruptions and inner models."""
    checkpoint_every: int = 25
    """Outer steps between checkpoints."""
    log_every: int = 5
    """Outer steps between TensorBoard scalars."""

    def __post_init__(self) -> None:
        for name in ("outer_steps", "pairs", "truncation", "inner_steps", "batch_size",
                     "val_batch", "checkpoint_every", "log_every"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ESConfig.{name}={value!r}: must be an integer >= 1")
        for name in ("sigma", "outer_lr", "max_loss"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"ESConfig.{name}={value!r}: must be a positive number")
        if (
            isinstance(self.burn_in, bool)
            or not isinstance(self.burn_in, int)
            or not (0 <= self.burn_in < self.inner_steps)
        ):
            raise ValueError(f"ESConfig.burn_in={self.burn_in!r}: must be an integer in [0, "
                             f"inner_steps={self.inner_steps})")  # fmt: skip
        if self.theta_init not in THETA_INITS:
            raise ValueError(f"ESConfig.theta_init={self.theta_init!r}: choose from "
                             f"{', '.join(THETA_INITS)}")  # fmt: skip


def checkpoint_file(path: str | os.PathLike[str]) -> Path:
    """The checkpoint file of a run folder (or the file itself)."""
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def load_lopt_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a learned-optimizer checkpoint (``weights_only=True``) and check its format.

    Args:
        path: The file, or a run folder holding :data:`CHECKPOINT_NAME`.

    Raises:
        CheckpointError: One line naming the path and what is wrong with it.
    """
    path = checkpoint_file(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such learned-optimizer checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many unrelated types on corrupt files
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
        found = state.get("kind") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path}: not a learned-optimizer checkpoint (kind {found!r}, "
                              f"expected {CHECKPOINT_KIND!r})")  # fmt: skip
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format version {state.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    required = {"lopt_config", "es_config", "theta", "optimizer", "step", "history", "inner"}
    missing = required - set(state)
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {sorted(missing)}")
    return state


def es_config_from(state: dict[str, Any], **overrides: Any) -> ESConfig:
    """The ES config of a checkpoint dict, with ``overrides`` (e.g. more outer steps)."""
    return ESConfig(**{**state["es_config"], **overrides})


def lopt_config_from(state: dict[str, Any]) -> LOptConfig:
    """The optimizer architecture of a checkpoint dict."""
    return LOptConfig.from_dict(state["lopt_config"])
