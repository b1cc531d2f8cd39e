"""The final phase of a design run: the best designs back at full width (the arithmetic of
widths is :mod:`metaqnn.core.widths`), the hand-designed baselines, one epoch budget that fits
them all in the time left, and their training with the final recipe."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from envs.layers import Architecture
from metaqnn.core.checkpoint import save_checkpoint
from metaqnn.core.data import Dataset
from metaqnn.core.nets import NetConfig, build_model, count_parameters
from metaqnn.core.training import (
    TrainConfig,
    TrainResult,
    evaluate,
    steps_per_epoch,
    train_architecture,
)
from metaqnn.core.widths import full_width, rescale, widest_fitting
from metaqnn.design.selection import measure, selects_by_folds

#: Re-exported from :mod:`metaqnn.core.widths` (torch-free), where they live.
__all__ = ["EPOCH_GRAIN", "Candidate", "FinalResult", "choose_epochs", "epoch_seconds",
           "epochs_label", "full_width", "probe_error", "rescale", "skipped_final",
           "train_final", "widest_fitting"]  # fmt: skip


@dataclass(frozen=True)
class Candidate:
    """A model of the final phase."""

    name: str
    """``design 1``, ``design 2``, ... or the baseline's name."""
    kind: str
    """``design`` or ``baseline``."""
    architecture: str
    """At full width."""
    search_architecture: str | None = None
    """The design as the search saw it (reduced width); None for a baseline."""
    search_reward: float | None = None
    """Its search reward; None for a baseline."""
    width_divisor: int = 1
    """The space's widths divided by this (1: full width; more when the budget is short)."""

    @property
    def slug(self) -> str:
        """The name as a file stem (``design-1``, ``hand-README-one-epoch-net``)."""
        return self.name.replace(":", "").replace(" ", "-")


def epoch_seconds(arch: Architecture, data: Dataset, config: TrainConfig, net: NetConfig,
                  device: torch.device | str, *, max_probe_s: float = 30.0) -> float:  # fmt: skip
    """Estimated seconds of one epoch of ``config`` (validation included), from short timed
    runs: the difference between a run of 3 steps and a longer one is the cost of the extra steps.

    When the longer run crosses the end of an epoch (small datasets: digits has 10 steps an
    epoch), its difference holds a validation per epoch added, so the remaining fixed time
    (building the model, first calls) is spread over the recipe's epochs; it was charged to
    every epoch before, which made tiny digits nets look twice as costly as they train.

    The 3-step run is timed twice and the faster time kept: the first pays the one-off costs
    (allocation, kernel choice) that would otherwise inflate it and shrink the difference, and
    a slow-down of the machine rarely hits both. The longer run grows
    (10, 40, 160 steps, ...) until the difference is at least a quarter of the 3-step run's
    time, so that a noisy machine does not drown it, or until it takes ``max_probe_s`` or a
    whole epoch. A difference that never comes out positive falls back to the longer run's
    average step, validation included: an over-estimate, never an under-estimate.
    """
    steps_per_epoch = math.ceil(len(data.train) / config.batch_size)

    def timed(steps: int) -> float:
        probe = dataclasses.replace(config, steps=steps, max_restarts=0)
        start = time.perf_counter()
        train_architecture(arch, data.train, data.val, probe, net_config=net, device=device)
        return time.perf_counter() - start

    short, extra = min(timed(3), timed(3)), 10  # the first pays the one-off costs
    while True:
        long = timed(3 + extra)
        gap = long - short
        if gap >= 0.25 * short or long >= max_probe_s or extra >= steps_per_epoch:
            break
        extra *= 4
    per_step = gap / extra if gap > 0 else long / (3 + extra)
    fixed = max(0.0, short - 3 * per_step)  # building, validation
    if gap > 0 and (3 + extra) // steps_per_epoch > 3 // steps_per_epoch:
        # the longer run crossed an epoch's end, so the difference holds the validations of
        # the epochs it added, and what is fixed is paid once per training (building the
        # model, the first calls): spread over the recipe's epochs, not paid every epoch
        return per_step * steps_per_epoch + fixed / max(1, config.epochs)
    return per_step * steps_per_epoch + fixed


#: The final phase's epochs are chosen in steps of this many epochs when the budget binds.
EPOCH_GRAIN = 0.1


def choose_epochs(seconds_left: float, epoch_costs: list[float], most: int) -> float:
    """The most epochs, at most ``most`` and in steps of :data:`EPOCH_GRAIN`, whose training of
    every model fits in 90 % of ``seconds_left``; below 1 when not even one epoch fits.

    A whole number unless the budget binds: then the last pass is partial (the recipe's
    schedule spans the steps run), so the time a whole epoch would not fill is not left idle.
    """
    per_epoch = sum(epoch_costs)
    if per_epoch <= 0:
        return most
    fit = 0.9 * seconds_left / per_epoch
    if fit >= most:
        return most
    return max(0.0, round(math.floor(round(fit / EPOCH_GRAIN, 6)) * EPOCH_GRAIN, 6))


def epochs_label(epochs: float) -> str:
    """``7`` for whole epochs, ``3.4`` for a partial last pass."""
    return f"{epochs:g}" if epochs != int(epochs) else str(int(epochs))


@dataclass(frozen=True)
class FinalResult:
    """One trained model of the final phase."""

    name: str
    kind: str
    architecture: str
    search_reward: float | None
    status: str
    val_accuracy: float
    test_accuracy: float
    parameters: int
    epochs: float
    """Passes over the training split (a fraction when the last one was partial)."""
    wall_s: float
    checkpoint: str
    width_divisor: int = 1
    test_wrong: tuple[int, ...] = ()
    """Indices of the test images the model gets wrong (for paired comparisons)."""
    folds: int = 0
    """0: ``val_accuracy`` is on the validation split and the model trained on the training
    split; k: it is the k-fold cross-validated accuracy, and the model was refitted on the
    training and validation images (:mod:`.selection`)."""


def train_final(
    candidate: Candidate,
    data: Dataset,
    config: TrainConfig,
    net: NetConfig,
    device: torch.device | str,
    out: Path,
    *,
    progress: bool,
    folds: int = 0,
    config_for: Callable[[int], TrainConfig] | None = None,
    split: dict[str, int] | None = None,
) -> FinalResult:
    """Train ``candidate`` with ``config``, measure it for selection (validation accuracy, or
    with ``folds`` of 2 or more the cross-validated accuracy of :mod:`.selection`), test it,
    save its checkpoint at ``out``.

    ``config_for(n)``: the recipe for ``n`` training images, where it depends on them (a
    budget of steps); default ``config`` for any number. ``split``: ``{"seed", "val_size"}``
    that split ``data``, recorded in the checkpoint so that ``metaqnn evaluate`` rebuilds
    the same validation images.
    """
    arch = Architecture.parse(candidate.architecture)
    start = time.perf_counter()
    recipe = config_for or (lambda n: config)
    measured = measure(arch, data, recipe, net, device, folds=folds, progress=progress)
    result = measured.result
    test = evaluate(result.model, data.test, batch_size=config.eval_batch_size, wrong=True)
    wall_s = time.perf_counter() - start
    metrics = {
        "val_accuracy": measured.selection_accuracy, "test_accuracy": test.accuracy,
        "wall_s": wall_s, "test_loss": test.loss, "history": [dict(h) for h in result.history],
        "normalization": {"mean": list(data.mean), "std": list(data.std)},
        "folds": folds if selects_by_folds(folds) else 0,
        "fold_accuracies": list(measured.fold_accuracies),
    }  # fmt: skip
    save_checkpoint(
        out, architecture=arch, net_config=net, train_config=recipe(measured.train_size),
        dataset=data.name, split=split,
        input_shape=data.spec.input_shape, state_dict=result.state_dict(), metrics=metrics,
    )  # fmt: skip
    ok = result.status == "ok"
    return FinalResult(
        name=candidate.name, kind=candidate.kind, architecture=candidate.architecture,
        search_reward=candidate.search_reward, status=result.status,
        val_accuracy=measured.selection_accuracy if ok else math.nan,
        test_accuracy=test.accuracy if ok else math.nan,
        parameters=count_parameters(result.model),
        epochs=_passes(result, config, measured.train_size),
        wall_s=wall_s, checkpoint=str(out),
        width_divisor=candidate.width_divisor, test_wrong=test.wrong if ok else (),
        folds=folds if selects_by_folds(folds) else 0,
    )  # fmt: skip


def _passes(result: TrainResult, config: TrainConfig, train_size: int) -> float:
    """Epochs run: whole ones, or the steps over the steps of one epoch of ``train_size``
    images when ``config`` sets steps (two decimals)."""
    if config.steps is None:
        return result.epochs_run
    return round(result.steps_run / steps_per_epoch(train_size, config.batch_size), 2)


def probe_error(done: list[dict], predicted: dict[str, float]) -> float:
    """How many times longer than probed the trained models' epochs took: the median over
    ``done`` (results as dicts) of measured over predicted epoch seconds, at least 1."""
    ratios = sorted(r["wall_s"] / r["epochs"] / predicted[r["name"]] for r in done
                    if r["epochs"] > 0 and predicted.get(r["name"], 0) > 0)  # fmt: skip
    return max(1.0, ratios[len(ratios) // 2]) if ratios else 1.0


def skipped_final(candidate: Candidate, data: Dataset, net: NetConfig) -> FinalResult:
    """The result of a candidate the budget had no room left for (status ``skipped``)."""
    channels, size, _ = data.spec.input_shape
    model = build_model(Architecture.parse(candidate.architecture), in_channels=channels,
                        input_size=size, config=net)  # fmt: skip
    return FinalResult(
        name=candidate.name, kind=candidate.kind, architecture=candidate.architecture,
        search_reward=candidate.search_reward, status="skipped", val_accuracy=math.nan,
        test_accuracy=math.nan, parameters=count_parameters(model), epochs=0, wall_s=0.0,
        checkpoint="", width_divisor=candidate.width_divisor,
    )  # fmt: skip
