"""The final phase of a design run: the best designs back at full width, the hand-designed
baselines, one epoch budget that fits them all in the time left, and their training with the
final recipe."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from envs.layers import Architecture, Conv, FullyConnected
from envs.space import SearchSpace
from metaqnn.core.checkpoint import save_checkpoint
from metaqnn.core.data import Dataset
from metaqnn.core.nets import NetConfig, count_flops, count_parameters
from metaqnn.core.training import TrainConfig, evaluate, train_architecture
from metaqnn.errors import ConfigError


def rescale(arch: Architecture, space: SearchSpace, divisor: int, to: int = 1) -> Architecture:
    """``arch``, found in ``space.scale_widths(divisor)``, at the widths of
    ``space.scale_widths(to)`` (``to=1``: the full space's widths).

    Raises:
        ConfigError: If a width of ``arch`` is not one of the scaled space's.
    """
    if divisor == to:
        return arch
    filters = {max(1, f // divisor): max(1, f // to) for f in space.conv_filters}
    widths = {max(1, w // divisor): max(1, w // to) for w in space.fc_widths}
    layers = []
    for layer in arch.layers:
        if isinstance(layer, Conv):
            if layer.filters not in filters:
                raise ConfigError(f"{layer} in {arch}: {layer.filters} filters is not a width "
                                  f"of the {space.name} space divided by {divisor}")  # fmt: skip
            layer = dataclasses.replace(layer, filters=filters[layer.filters])
        elif isinstance(layer, FullyConnected):
            if layer.width not in widths:
                raise ConfigError(f"{layer} in {arch}: width {layer.width} is not a width of "
                                  f"the {space.name} space divided by {divisor}")  # fmt: skip
            layer = dataclasses.replace(layer, width=widths[layer.width])
        layers.append(layer)
    return Architecture(tuple(layers))


def full_width(arch: Architecture, space: SearchSpace, divisor: int) -> Architecture:
    """``arch``, found in ``space.scale_widths(divisor)``, with the full space's widths back."""
    return rescale(arch, space, divisor, 1)


def widest_fitting(arch: Architecture, space: SearchSpace, divisor: int, max_flops: float,
                   *, in_channels: int, input_size: int) -> tuple[Architecture, int]:  # fmt: skip
    """The widest version of ``arch`` (found at widths / ``divisor``) whose forward pass costs
    at most ``max_flops``: full width, else widths / 2, / 4, ... and at the narrowest the
    search width. Returns it with its width divisor.
    """
    to = 1
    while True:
        wide = rescale(arch, space, divisor, to)
        flops = count_flops(wide, in_channels=in_channels, input_size=input_size)
        if to >= divisor or flops <= max_flops:
            return wide, to
        to = min(2 * to, divisor)


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
    metrics = {
        "val_accuracy": result.val_accuracy, "test_accuracy": test.accuracy,
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
        wall_s=time.perf_counter() - start, checkpoint=str(out),
        width_divisor=candidate.width_divisor,
    )  # fmt: skip
