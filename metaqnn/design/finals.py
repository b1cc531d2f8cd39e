"""The final phase of a design run: the best designs back at full width (the arithmetic of
widths is :mod:`metaqnn.core.widths`), the hand-designed baselines, one epoch budget that fits
them all in the time left, and their training with the final recipe."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from envs.layers import Architecture
from metaqnn.core.checkpoint import save_checkpoint
from metaqnn.core.data import Dataset
from metaqnn.core.nets import NetConfig, count_parameters
from metaqnn.core.training import TrainConfig, evaluate, train_architecture
from metaqnn.core.widths import full_width, rescale, widest_fitting

#: Re-exported from :mod:`metaqnn.core.widths` (torch-free), where they live.
__all__ = ["Candidate", "FinalResult", "choose_epochs", "epoch_seconds", "full_width",
           "rescale", "train_final", "widest_fitting"]  # fmt: skip


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
                  device: torch.device | str) -> float:  # fmt: skip
    """Estimated seconds of one epoch of ``config`` (validation included), from two short
    timed runs (3 and 13 steps): their difference is the cost of 10 steps."""
    times = []
    for steps in (3, 13):
        probe = dataclasses.replace(config, steps=steps, max_restarts=0)
        start = time.perf_counter()
        train_architecture(arch, data.train, data.val, probe, net_config=net, device=device)
        times.append(time.perf_counter() - start)
    per_step = max(0.0, (times[1] - times[0]) / 10)
    fixed = max(0.0, times[0] - 3 * per_step)  # building, validation
    return per_step * math.ceil(len(data.train) / config.batch_size) + fixed


def choose_epochs(seconds_left: float, epoch_costs: list[float], most: int) -> int:
    """The largest epoch count, at most ``most``, whose training of every model fits in 90 % of
    ``seconds_left`` (0 when not even one epoch fits)."""
    per_epoch = sum(epoch_costs)
    if per_epoch <= 0:
        return most
    return max(0, min(most, math.floor(0.9 * seconds_left / per_epoch)))


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
    epochs: int
    wall_s: float
    checkpoint: str
    width_divisor: int = 1


def train_final(
    candidate: Candidate,
    data: Dataset,
    config: TrainConfig,
    net: NetConfig,
    device: torch.device | str,
    out: Path,
    *,
    progress: bool,
) -> FinalResult:
    """Train ``candidate`` with ``config``, measure validation and test accuracy, save its
    checkpoint at ``out``."""
    arch = Architecture.parse(candidate.architecture)
    start = time.perf_counter()
    result = train_architecture(arch, data.train, data.val, config, net_config=net,
                                device=device, progress=progress)  # fmt: skip
    test = evaluate(result.model, data.test, batch_size=config.eval_batch_size)
    wall_s = time.perf_counter() - start
    metrics = {
        "val_accuracy": result.val_accuracy, "test_accuracy": test.accuracy, "wall_s": wall_s,
        "test_loss": test.loss, "history": [dict(h) for h in result.history],
        "normalization": {"mean": list(data.mean), "std": list(data.std)},
    }  # fmt: skip
    save_checkpoint(
        out, architecture=arch, net_config=net, train_config=config, dataset=data.name,
        input_shape=data.spec.input_shape, state_dict=result.state_dict(), metrics=metrics,
    )  # fmt: skip
    ok = result.status == "ok"
    return FinalResult(
        name=candidate.name, kind=candidate.kind, architecture=candidate.architecture,
        search_reward=candidate.search_reward, status=result.status,
        val_accuracy=result.val_accuracy if ok else math.nan,
        test_accuracy=test.accuracy if ok else math.nan,
        parameters=count_parameters(result.model), epochs=result.epochs_run,
        wall_s=wall_s, checkpoint=str(out),
        width_divisor=candidate.width_divisor,
    )  # fmt: skip
