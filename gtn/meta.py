"""Meta-training a teacher (a :class:`GTNTeacher`, or distilled data): unroll the inner loop on
a fresh learner, score the learner on real data, backpropagate through the unroll into the
teacher (generator, curriculum, schedule; or pixels). Resumable from checkpoints; NaN or
exploding steps are skipped, not fatal.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from tqdm import tqdm

from gtn.distill import DistillConfig, DistilledData
from gtn.inner_loop import loss_fn
from gtn.io import atomic_save
from gtn.pretrained import PRETRAINED, dequantize, pretrained_file
from gtn.teacher import GTNTeacher, SyntheticTeacher, TeacherConfig

FORMAT_VERSION = 1
#: Outer step seed -> a fresh learner (a new initialisation, and possibly a new architecture),
#: on the teacher's device.
LearnerFactory = Callable[[int], nn.Module]

#: What the outer loop trains, by name: teacher -> the parameters it updates (the rest stay
#: frozen, and no graph is built through them). ``schedule`` keeps the synthetic data as it is
#: (say, fitted to real images by :mod:`gtn.warmstart`) and learns only the inner learning rates
#: and momenta.
TRAINED_PARTS: dict[str, Callable[[SyntheticTeacher], Iterable[nn.Parameter]]] = {
    "all": lambda teacher: teacher.parameters(),
    "schedule": lambda teacher: teacher.schedule.parameters(),
}


@dataclass(frozen=True)
class MetaConfig:
    """The outer loop."""

    outer_steps: int = 2000
    """Outer (meta) steps."""
    outer_lr: float = 0.02
    """Adam learning rate of the teacher (the paper's for MNIST; 0.004 for CIFAR)."""
    cosine: bool = True
    """Cosine decay of the outer learning rate to 0 over ``outer_steps``."""
    meta_batch: int = 128
    """Real training examples scoring the learner at each outer step."""
    intermediate_every: int = 0
    """Also score the learner after every this many inner steps (0: only at the end)."""
    truncate: int | None = None
    """Backpropagate through the last this many inner steps only (None: all)."""
    checkpoint: bool = False
    """Gradient checkpointing of the inner steps: the same meta-gradient with memory bounded by
    the learner's parameters per step instead of its activations (each step is recomputed in
    the backward pass)."""
    max_meta_loss: float = 1e3
    """A step whose meta-loss is above this (or not finite) is skipped as exploded."""
    grad_clip: float | None = 1.0
    """Clip the teacher's gradient norm to this (None: no clipping). Meta-gradients over random
    architectures are heavy-tailed; unclipped, a few outliers inflate Adam's second moment and
    meta-training stalls (digits, 150 outer steps: unseen-architecture median accuracy 0.17
    unclipped, 0.83 clipped at 1.0)."""
    seed: int = 0
    """Seed of learners, curriculum noise and real meta-batches (derived per step)."""
    checkpoint_every: int = 50
    """Outer steps between checkpoints (and sample grids)."""
    log_every: int = 10
    """Outer steps between TensorBoard scalars."""
    train: str = "all"
    """Which parts of the teacher the outer loop updates: a key of :data:`TRAINED_PARTS`."""

    def __post_init__(self) -> None:
        for name in ("outer_steps", "meta_batch", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"MetaConfig.{name}={getattr(self, name)}: must be >= 1")
        if self.outer_lr <= 0 or self.intermediate_every < 0:
            raise ValueError(f"MetaConfig: outer_lr={self.outer_lr} must be > 0 and "
                             f"intermediate_every={self.intermediate_every} >= 0")  # fmt: skip
        if self.train not in TRAINED_PARTS:
            raise ValueError(
                f"MetaConfig.train={self.train!r}: choose from {sorted(TRAINED_PARTS)}"
            )


class TeacherDivergedError(ValueError):
    """An outer step left the teacher with non-finite weights (an outer learning rate far too
    high); the run stops before anything non-finite is logged or saved."""


@dataclass(frozen=True)
class StepRecord:
    """One outer step: meta-loss and learner accuracy on the real meta-batch."""

    step: int
    meta_loss: float
    accuracy: float
    skipped: bool
    outer_lr: float


def _step_seed(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step * 7_919) % (2**62)


class MetaTrainer:
    """Meta-trains a teacher. ``run()`` continues from ``self.step`` to ``outer_steps``.

    Args:
        teacher: The teacher to train (on ``device``).
        learner_factory: Seed -> a fresh learner module on ``device``.
        real_x: (N, C, H, W) real training images (normalised), on ``device``.
        real_y: (N,) their labels.
        config: The outer loop.
        logdir: TensorBoard folder (None: no TensorBoard).
        checkpoint_path: Where to save checkpoints (None: no checkpoints).
        extra: Plain values to store in checkpoints (dataset, learner description, ...).
    """

    def __init__(
        self,
        teacher: SyntheticTeacher,
        learner_factory: LearnerFactory,
        real_x: torch.Tensor,
        real_y: torch.Tensor,
        config: MetaConfig,
        *,
        logdir: str | os.PathLike[str] | None = None,
        checkpoint_path: str | os.PathLike[str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.teacher, self.learner_factory = teacher, learner_factory
        self.real_x, self.real_y = real_x, real_y
        self.config = config
        self.device = real_x.device
        self.trained = list(TRAINED_PARTS[config.train](teacher))
        trained = {id(p) for p in self.trained}
        for param in teacher.parameters():
            param.requires_grad_(id(param) in trained)
        self.optimizer = torch.optim.Adam(self.trained, lr=config.outer_lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.step = 0
        self.history: list[StepRecord] = []
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.extra = dict(extra or {})
        self._writer = None
        if logdir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(logdir))

    def _lr_factor(self, step: int) -> float:
        """Cosine decay from 1 to 0 over ``outer_steps`` (or 1 without ``cosine``)."""
        if not self.config.cosine:
            return 1.0
        total = self.config.outer_steps
        return 0.5 * (1 + math.cos(math.pi * min(step, total) / total))

    # ------------------------------------------------------------------ one outer step
    def outer_step(self) -> StepRecord:
        """Draw a fresh learner, unroll, score on a real meta-batch, update the teacher."""
        config, step = self.config, self.step
        seed = _step_seed(config.seed, step)
        rng = torch.Generator(device=self.device).manual_seed(seed)
        learner = self.learner_factory(seed)
        inner = self.teacher.config.inner_steps
        every = config.intermediate_every
        keep = frozenset(range(every, inner, every)) if every else frozenset()
        self.teacher.train()
        result = self.teacher.unroll(
            learner,
            generator=rng,
            truncate=config.truncate,
            checkpoint=config.checkpoint,
            keep_steps=keep,
        )
        index = torch.randint(
            len(self.real_y), (config.meta_batch,), generator=rng, device=self.device
        )
        x, y = self.real_x[index], self.real_y[index]  # (M, C, H, W), (M,)
        buffers = dict(learner.named_buffers())
        logits = functional_call(learner, (result.params, buffers), (x,))
        meta_loss = loss_fn(logits, y)
        for params in result.kept.values():
            meta_loss = meta_loss + loss_fn(functional_call(learner, (params, buffers), (x,)), y)
        meta_loss = meta_loss / (1 + len(result.kept))
        accuracy = (logits.argmax(1) == y).float().mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss_value = float(meta_loss.detach())  # one host sync per outer step
        skipped = not math.isfinite(loss_value) or loss_value > config.max_meta_loss
        if not skipped:
            meta_loss.backward()
            grads = [p.grad for p in self.trained if p.grad is not None]
            norm = torch.nn.utils.clip_grad_norm_(self.trained, config.grad_clip or float("inf"))
            skipped = not math.isfinite(float(norm)) or not grads
            if not skipped:
                self.optimizer.step()
                self._check_finite(step)
        self.optimizer.zero_grad(set_to_none=True)
        record = StepRecord(
            step, loss_value, float(accuracy), skipped, self.scheduler.get_last_lr()[0]
        )
        with warnings.catch_warnings():  # a skipped step still advances the schedule
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            self.scheduler.step()
        self.step += 1
        self.history.append(record)
        return record

    def _check_finite(self, step: int) -> None:
        """Raise :class:`TeacherDivergedError` when the update left a non-finite weight (one
        host sync per outer step, beside the meta-loss's)."""
        finite = torch.stack([torch.isfinite(p).all() for p in self.trained]).all()
        if not bool(finite):
            raise TeacherDivergedError(
                f"outer step {step}: the teacher's weights became non-finite after the update "
                f"(outer lr {self.scheduler.get_last_lr()[0]:g}); nothing was saved from this "
                "step on: lower --outer-lr (or --grad-clip) and start again, or resume the "
                "last checkpoint"
            )

    # ------------------------------------------------------------------ the loop
    def run(
        self, *, progress: bool = True, until: int | None = None, time_limit_s: float | None = None
    ) -> list[StepRecord]:
        """Outer steps until ``until`` (default ``outer_steps``) or until ``time_limit_s``
        seconds have passed, with checkpoints (also at the end) and logs."""
        end = min(until or self.config.outer_steps, self.config.outer_steps)
        deadline = None if time_limit_s is None else time.monotonic() + time_limit_s
        bar = tqdm(total=end, initial=self.step, disable=not progress, unit="outer step")
        with bar:
            while self.step < end:
                if deadline is not None and time.monotonic() > deadline:
                    bar.write(
                        f"time limit of {time_limit_s:.0f} s reached at outer step {self.step}"
                    )
                    if self.checkpoint_path:
                        self.save(self.checkpoint_path)
                    break
                record = self.outer_step()
                if record.skipped:
                    bar.write(f"outer step {record.step}: skipped (meta-loss {record.meta_loss})")
                bar.update(1)
                bar.set_postfix(loss=f"{record.meta_loss:.3f}", acc=f"{record.accuracy:.3f}",
                                skipped=sum(r.skipped for r in self.history))  # fmt: skip
                self._log(record)
                if self.checkpoint_path and (
                    self.step % self.config.checkpoint_every == 0 or self.step == end
                ):
                    self.save(self.checkpoint_path)
        if self._writer is not None:
            self._log_end()
            self._writer.flush()
        return self.history

    def _log_end(self) -> None:
        """The last step's scalars and images (when the periodic logs missed them) and the
        run's hyperparameters with its final metrics, for TensorBoard's HParams tab."""
        if not self.history:
            return
        last, writer = self.history[-1], self._writer
        if not (last.step % self.config.log_every == 0 or last.skipped):
            self._log(last, force=True)
        if (last.step + 1) % self.config.checkpoint_every != 0:
            writer.add_image("samples/per_class", self.teacher.sample_grid(), last.step)
        recent = [r for r in self.history[-20:] if not r.skipped]
        if not recent:
            return
        params = {**asdict(self.config), **self.extra}
        hparams = {
            k: v if isinstance(v, bool | int | float | str) else str(v)
            for k, v in params.items()
            if not isinstance(v, dict | list)
        }
        metrics = {
            "hparam/learner_accuracy": sum(r.accuracy for r in recent) / len(recent),
            "hparam/meta_loss": sum(r.meta_loss for r in recent) / len(recent),
        }
        writer.add_hparams(hparams, metrics, run_name=".", global_step=last.step)

    def _log(self, record: StepRecord, *, force: bool = False) -> None:
        writer = self._writer
        if writer is None:
            return
        step = record.step
        if force or step % self.config.log_every == 0 or record.skipped:
            writer.add_scalar(
                "meta/loss", record.meta_loss if math.isfinite(record.meta_loss) else -1, step
            )
            writer.add_scalar("meta/learner_accuracy", record.accuracy, step)
            writer.add_scalar("meta/outer_lr", record.outer_lr, step)
            writer.add_scalar("meta/skipped_steps", sum(r.skipped for r in self.history), step)
            lrs, momenta = (
                self.teacher.schedule.lrs().detach(),
                self.teacher.schedule.momenta().detach(),
            )
            for t in sorted({0, len(lrs) // 2, len(lrs) - 1}):
                writer.add_scalar(f"schedule/lr_step{t:02d}", float(lrs[t]), step)
                writer.add_scalar(f"schedule/momentum_step{t:02d}", float(momenta[t]), step)
            writer.add_histogram("schedule/lr", lrs, step)
            writer.add_histogram("schedule/momentum", momenta, step)
        if (step + 1) % self.config.checkpoint_every == 0:
            writer.add_image("samples/per_class", self.teacher.sample_grid(), step)
            lrs, momenta = (
                self.teacher.schedule.lrs().tolist(),
                self.teacher.schedule.momenta().tolist(),
            )
            rows = "\n".join(
                f"| {t} | {a:.4g} | {m:.3f} |"
                for t, (a, m) in enumerate(zip(lrs, momenta, strict=True))
            )
            writer.add_text(
                "schedule/table", "| step | lr | momentum |\n|---|---|---|\n" + rows, step
            )

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, Any]:
        """The checkpoint dict (plain values and tensors only)."""
        return {
            "format_version": FORMAT_VERSION,
            "kind": self.teacher.checkpoint_kind,
            "teacher_config": self.teacher.config.to_dict(),
            "meta_config": asdict(self.config),
            "teacher": {k: v.detach().cpu() for k, v in self.teacher.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "history": [asdict(r) for r in self.history],
            "rng": {"torch": torch.random.get_rng_state()},
            "extra": self.extra,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a checkpoint atomically."""
        return atomic_save(self.state(), path)

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore teacher, optimiser, scheduler, step, history and RNG from a checkpoint dict."""
        self.teacher.load_state_dict(state["teacher"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.history = [StepRecord(**r) for r in state["history"]]
        torch.random.set_rng_state(state["rng"]["torch"])


#: Checkpoint kind -> (config from its dict, teacher class).
TEACHERS: dict[str, tuple[Callable[[dict], Any], type[SyntheticTeacher]]] = {
    GTNTeacher.checkpoint_kind: (TeacherConfig.from_dict, GTNTeacher),
    DistilledData.checkpoint_kind: (DistillConfig.from_dict, DistilledData),
}


#: File name of a run folder's checkpoint.
CHECKPOINT_NAME = "checkpoint.pt"


def checkpoint_file(path: str | os.PathLike[str]) -> Path:
    """A checkpoint file from a path that may be a run folder (which holds
    :data:`CHECKPOINT_NAME`), the file itself, or the name of a shipped teacher
    (:data:`gtn.pretrained.PRETRAINED`, when no such path exists).

    Raises:
        ValueError: If a shipped teacher's file is missing or damaged.
    """
    path = Path(path)
    if not path.exists() and str(path) in PRETRAINED:
        return pretrained_file(str(path))
    return path / CHECKPOINT_NAME if path.is_dir() else path


def load_meta_checkpoint(
    path: str | os.PathLike[str], map_location: Any = "cpu", kind: str | None = None
) -> dict[str, Any]:
    """Read a meta-training checkpoint with ``weights_only=True`` and check its format.

    Args:
        path: The file, or a run folder holding :data:`CHECKPOINT_NAME`.
        map_location: Where to put its tensors.
        kind: Require this kind (``gtn-meta``, ``dd-meta``); None accepts any of
            :data:`TEACHERS`.

    Raises:
        ValueError: One line naming the path and what is wrong with it (missing, unreadable,
            a model checkpoint or another kind, another format version, missing entries, or a
            teacher tensor that is not finite).
    """
    path = checkpoint_file(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such meta-training checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch.load raises many unrelated types on corrupt files
        raise ValueError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    kinds = [kind] if kind else sorted(TEACHERS)
    if isinstance(state, dict) and "kind" not in state and "architecture" in state:
        raise ValueError(
            f"{path}: is a model checkpoint (`metaqnn train`), not a GTN teacher checkpoint "
            "(use it with `metaqnn evaluate` or `metaqnn export`)"
        )
    if not isinstance(state, dict) or state.get("kind") not in kinds:
        found = state.get("kind") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{path}: not a meta-training checkpoint of kind {kinds} ({found!r})")
    if state.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format version {state.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    required = {"teacher_config", "meta_config", "teacher", "optimizer", "scheduler", "step"}
    missing = required - set(state)
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {sorted(missing)}")
    if not isinstance(state["teacher"], dict):
        raise ValueError(f"{path}: its teacher is a {type(state['teacher']).__name__}, not a dict")
    state = dequantize(state)
    for name, value in state["teacher"].items():
        if (isinstance(value, torch.Tensor) and value.is_floating_point()
                and not bool(torch.isfinite(value).all())):  # fmt: skip
            raise ValueError(
                f"{path}: teacher tensor {name!r} has non-finite values (NaN or inf): the "
                "teacher diverged; use an earlier checkpoint or train it again"
            )
    return state


def teacher_from_checkpoint(
    state: dict[str, Any], device: torch.device | str = "cpu"
) -> SyntheticTeacher:
    """Rebuild the trained teacher (GTN or distilled data) of a checkpoint dict."""
    from_dict, cls = TEACHERS[state["kind"]]
    teacher = cls(from_dict(state["teacher_config"])).to(device)
    teacher.load_state_dict(state["teacher"])
    return teacher
