"""Real-data training with MetaQNN's recipe: Adam, step decay of the learning rate, and a
restart from a fresh initialisation at a lower learning rate when a model is at chance.
Other optimizers (AdamW, SGD with Nesterov momentum), schedules (cosine, one-cycle, warmup) and
label smoothing are ``TrainConfig`` fields whose defaults keep MetaQNN's recipe; the choices are
the registries of :mod:`metaqnn.core.optim`, named recipes are in :mod:`metaqnn.core.recipes`.

Randomness: a root ``torch.Generator`` seeded with ``TrainConfig.seed`` draws, per attempt, the
seed of the model initialisation and dropout (applied inside ``torch.random.fork_rng``, so the
caller's global RNG is left as it was) and the seed of the CPU generator that shuffles batches.
The same seed on the same machine gives the same result.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from envs.layers import Architecture
from metaqnn.core.data import Split, iterate_batches
from metaqnn.core.divergence import divergence
from metaqnn.core.nets import NetConfig, build_model, trace_shapes
from metaqnn.core.optim import lr_at, make_optimizer, warmup_steps
from metaqnn.core.precision import autocast
from metaqnn.core.train_config import TrainConfig
from metaqnn.errors import ConfigError


@dataclass(frozen=True)
class EvalResult:
    """Accuracy and mean cross-entropy loss of a model on a split.

    Attributes:
        accuracy: Share of correctly classified examples, in [0, 1].
        loss: Mean cross-entropy per example (NaN or inf for a diverged model).
    """

    accuracy: float
    loss: float
    wrong: tuple[int, ...] = ()
    """Indices of the examples it gets wrong, when asked for (``evaluate(..., wrong=True)``)."""


@dataclass(frozen=True)
class TrainResult:
    """The outcome of :func:`train_model`.

    Attributes:
        status: ``"ok"`` or ``"diverged"`` (a non-finite or exploded loss, see
            :mod:`metaqnn.core.divergence`; no exception is raised).
        reason: Why it diverged (empty when ok).
        val_accuracy: Validation accuracy at the end (NaN when diverged).
        val_loss: Validation loss at the end (NaN when diverged).
        epochs_run: Passes over the data in the final attempt (the last may be partial).
        steps_run: Optimizer steps in the final attempt.
        total_steps: Optimizer steps of all attempts, restarted ones included.
        restarts: How many times training restarted from a fresh initialisation.
        restart_reasons: Why each restart happened.
        wall_time_s: Wall-clock seconds of the whole call.
        history: One dict per epoch of every attempt: ``attempt``, ``epoch``, ``lr``,
            ``train_loss``, ``train_acc``, ``val_acc``, ``val_loss`` (``lr`` is that of the
            epoch's first step).
        model: The trained model of the final attempt, in eval mode.
    """

    status: str
    reason: str
    val_accuracy: float
    val_loss: float
    epochs_run: int
    steps_run: int
    total_steps: int
    restarts: int
    restart_reasons: tuple[str, ...]
    wall_time_s: float
    history: tuple[dict[str, float], ...]
    model: nn.Module = field(repr=False, compare=False)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The trained model's state dict."""
        return self.model.state_dict()


def steps_per_epoch(train_size: int, batch_size: int) -> int:
    """Optimizer steps in one pass over ``train_size`` examples (the last partial batch is
    dropped; at least one)."""
    return train_size // batch_size or 1


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, *, batch_size: int = 1000,
             wrong: bool = False) -> EvalResult:  # fmt: skip
    """Accuracy and mean cross-entropy of ``model`` on ``split``, in eval mode, without grads.

    The model's train/eval mode is restored afterwards. One host sync at the end.

    Args:
        model: Maps (N, C, H, W) images to (N, classes) logits.
        split: The examples; batches are moved to the model's device.
        batch_size: Examples per forward pass.
        wrong: Also list the indices of the examples it gets wrong (``EvalResult.wrong``).

    Returns:
        The :class:`EvalResult`.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = torch.zeros((), dtype=torch.int64, device=device)
    loss_sum = torch.zeros((), device=device)
    misses = []
    for x, y in iterate_batches(split, batch_size):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits = model(x)  # (B, classes)
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        hit = logits.argmax(dim=1) == y  # (B,) bool
        correct += hit.sum()
        if wrong:
            misses.append(~hit)
    model.train(was_training)
    n = max(len(split), 1)
    listed = tuple(torch.cat(misses).nonzero().flatten().tolist()) if misses else ()
    return EvalResult(accuracy=correct.item() / n, loss=loss_sum.item() / n, wrong=listed)


@dataclass
class _Attempt:
    """What one attempt ended with; ``restart`` holds a reason when it should restart."""

    model: nn.Module
    epochs: int = 0
    steps: int = 0
    val: EvalResult = EvalResult(math.nan, math.nan)
    diverged: str = ""
    restart: str = ""


def _run_attempt(
    model: nn.Module,
    train: Split,
    val: Split,
    config: TrainConfig,
    *,
    lr: float,
    generator: torch.Generator,
    may_restart: bool,
    history: list[dict[str, float]],
    bar: Any,
    attempt: int,
    budget: int,
) -> _Attempt:
    """Train one freshly initialised model for ``budget`` steps; stop early to diverge or
    restart."""
    optimizer = make_optimizer(model.parameters(), lr, config)
    drop_last = len(train) > config.batch_size  # no tiny last batch (BatchNorm needs >1)
    full_epoch = steps_per_epoch(len(train), config.batch_size)
    warmup = warmup_steps(config, budget, full_epoch)
    device = next(model.parameters()).device
    out = _Attempt(model)
    while out.steps < budget:
        epoch_lr = lr_at(config, lr, out.steps, out.epochs, budget, warmup)  # its first step's
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen, batches = 0, 0
        for x, y in iterate_batches(
            train, config.batch_size, shuffle=True, generator=generator, drop_last=drop_last
        ):
            step_lr = lr_at(config, lr, out.steps, out.epochs, budget, warmup)  # host numbers
            for group in optimizer.param_groups:
                group["lr"] = step_lr
            with autocast(device, config.precision):
                logits = model(x)  # (B, classes)
                loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()  # stays on the device: no per-step host sync
            correct += (logits.detach().argmax(dim=1) == y).sum()
            seen, batches, out.steps = seen + len(y), batches + 1, out.steps + 1
            bar.update(1)
            if not bar.disable and out.steps % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{step_lr:.2g}", refresh=False)
            if out.steps >= budget:
                break
        out.epochs += 1
        train_loss = (loss_sum / batches).item()  # the epoch's one host sync (plus evaluate)
        out.val = evaluate(model, val, batch_size=config.eval_batch_size)
        history.append({
            "attempt": attempt, "epoch": out.epochs, "lr": epoch_lr, "train_loss": train_loss,
            "train_acc": correct.item() / seen, "val_acc": out.val.accuracy,
            "val_loss": out.val.loss,
        })  # fmt: skip
        bar.set_postfix(loss=f"{train_loss:.3f}", val_acc=f"{out.val.accuracy:.3f}")
        chance = 1.0 / logits.shape[-1] + config.chance_tolerance
        why = divergence(out.val.loss, logits.shape[-1], train_loss=train_loss)
        if why:
            out.diverged = f"{why} in epoch {out.epochs} at lr {epoch_lr:.3g}"
        elif out.epochs == 1 and batches == full_epoch and out.val.accuracy < chance:
            out.restart = (
                f"validation accuracy {out.val.accuracy:.4f} is at chance (< {chance:.4f}) "
                f"after the first epoch at lr {epoch_lr:.3g}"
            )
        if may_restart and out.diverged and (out.epochs == 1 or config.late_restarts):
            out.restart = out.diverged
        if out.diverged or (out.restart and may_restart):
            break
    return out


def _fork_rng(device: torch.device) -> Any:
    """Fork the global RNG of the CPU (and of ``device``) so seeding leaves the caller's alone."""
    if device.type == "cpu":
        return torch.random.fork_rng(devices=[])
    backend = getattr(torch, device.type)  # torch.cuda, torch.xpu, ...
    index = device.index if device.index is not None else backend.current_device()
    return torch.random.fork_rng(devices=[index], device_type=device.type)


def train_model(
    model_factory: Callable[[], nn.Module],
    train: Split,
    val: Split,
    config: TrainConfig = TrainConfig(),
    *,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> TrainResult:
    """Train a model on real data with MetaQNN's recipe (or another ``config`` chooses).

    The optimizer ``config.optimizer`` with ``config``'s settings; under the default
    ``"step"`` schedule the learning rate decays by ``lr_decay`` every ``lr_decay_epochs``
    epochs, under ``"cosine"`` and ``"onecycle"`` it is set every step over the attempt's
    budget (see :mod:`metaqnn.core.optim`). If after the first epoch the model is at chance
    (or its loss is not finite or exploded), training restarts from a fresh model with the
    initial learning rate multiplied by ``restart_lr_factor``, up to ``max_restarts`` times;
    the last attempt trains to the end of its budget. A loss that becomes non-finite or
    explodes later (:mod:`metaqnn.core.divergence`) ends training with ``status="diverged"``,
    or, with ``late_restarts``, restarts it the same way while restarts remain.
    The loss is checked once per epoch, not per step. A step budget that ends within the
    first epoch skips the chance check.

    Args:
        model_factory: Returns a freshly initialised model (called once per attempt, under a
            seeded fork of torch's global RNG); it is moved to ``device``.
        train: Training split.
        val: Validation split, evaluated after every epoch.
        config: The recipe and the seed.
        device: Where to train; the splits are moved there.
        progress: Show a tqdm bar (loss text refreshed every 50 steps and every epoch).

    Returns:
        The :class:`TrainResult`, holding the trained model.

    Raises:
        ConfigError: If a split is empty.
    """
    if len(train) == 0 or len(val) == 0:
        raise ConfigError(f"empty split: {len(train)} training and {len(val)} validation examples")
    start = time.perf_counter()
    device = torch.device(device)
    train, val = train.to(device), val.to(device)
    root = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, float]] = []
    reasons: list[str] = []
    per_epoch = steps_per_epoch(len(train), config.batch_size)
    budget = config.steps if config.steps is not None else config.epochs * per_epoch
    lr, total = config.lr, 0
    bar = tqdm(disable=not progress, unit="step", leave=False)
    with _fork_rng(device), bar:
        for attempt in range(config.max_restarts + 1):
            init_seed, shuffle_seed = torch.randint(2**62, (2,), generator=root).tolist()
            torch.manual_seed(init_seed)  # initialisation and dropout of this attempt
            model = model_factory().to(device)
            bar.reset(total=budget)
            bar.set_description(f"attempt {attempt}")
            out = _run_attempt(
                model, train, val, config, lr=lr, budget=budget, attempt=attempt, bar=bar,
                history=history, generator=torch.Generator().manual_seed(shuffle_seed),
                may_restart=attempt < config.max_restarts,
            )  # fmt: skip
            total += out.steps
            if not (out.restart and attempt < config.max_restarts):
                break
            reasons.append(out.restart)
            lr *= config.restart_lr_factor
    model.eval()
    val_result = EvalResult(math.nan, math.nan) if out.diverged else out.val
    return TrainResult(
        status="diverged" if out.diverged else "ok",
        reason=out.diverged,
        val_accuracy=val_result.accuracy,
        val_loss=val_result.loss,
        epochs_run=out.epochs,
        steps_run=out.steps,
        total_steps=total,
        restarts=len(reasons),
        restart_reasons=tuple(reasons),
        wall_time_s=time.perf_counter() - start,
        history=tuple(history),
        model=model,
    )


def train_architecture(
    arch: Architecture,
    train: Split,
    val: Split,
    config: TrainConfig = TrainConfig(),
    *,
    net_config: NetConfig | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> TrainResult:
    """Build ``arch`` for the shape of ``train``'s images and train it with :func:`train_model`.

    Args:
        arch: The architecture.
        train: Training split of square images (N, C, H, H).
        val: Validation split.
        config: The recipe and the seed.
        net_config: How the architecture becomes a module (default ``NetConfig()``).
        device: Where to train.
        progress: Show a progress bar.

    Returns:
        The :class:`TrainResult`.

    Raises:
        ConfigError: If the images are not square.
        envs.layers.ArchitectureError: If the architecture cannot be built on them.
    """
    _, channels, height, width = train.x.shape
    if height != width:
        raise ConfigError(f"images must be square, got {height}x{width}")
    factory = partial(
        build_model, arch, in_channels=channels, input_size=height,
        config=net_config or NetConfig(), device=device,
    )  # fmt: skip
    trace_shapes(arch, in_channels=channels, input_size=height)  # fail fast, before training
    return train_model(factory, train, val, config, device=device, progress=progress)
