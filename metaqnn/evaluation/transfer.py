"""Transfer of an architecture, with or without its trained weights, to another dataset.

As in MetaQNN's transfer table (Baker et al. 2017, Table 4): the architecture found on dataset
A is trained on dataset B from scratch, and finetuned from its A weights, with the same
budget (one :class:`~metaqnn.core.training.TrainConfig` for both). ``as_is`` also scores the A
model on B without any training, when all its weights fit.

Weights are carried over by name where their shapes agree; the others (a first conv over
another channel count, an FC layer over another image size, a classifier over another class
count) keep their fresh initialisation and are listed in the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from envs.layers import Architecture, Softmax
from metaqnn.core.checkpoint import Checkpoint
from metaqnn.core.data import Dataset
from metaqnn.core.nets import build_model, trace_shapes
from metaqnn.core.training import TrainConfig, evaluate, train_model
from metaqnn.errors import ConfigError


@dataclass(frozen=True)
class TransferRun:
    """One way of getting a model for the target dataset, and how it scored.

    Attributes:
        mode: A key of :data:`TRANSFER_MODES`.
        source: Dataset the architecture (and weights) came from.
        target: Dataset trained and tested on.
        architecture: The architecture as built for the target (classifier resized).
        test_accuracy: Accuracy on the target's test split.
        test_loss: Mean cross-entropy there.
        steps: Optimizer steps taken (0 for ``as_is``).
        restarts: Restarts of training at chance.
        wall_time_s: Seconds of training and testing.
        transferred: Names of the tensors copied from the source weights.
        reinitialised: Names of the tensors that kept a fresh initialisation.
    """

    mode: str
    source: str
    target: str
    architecture: str
    test_accuracy: float
    test_loss: float
    steps: int
    restarts: int
    wall_time_s: float
    transferred: tuple[str, ...]
    reinitialised: tuple[str, ...]


def for_classes(arch: Architecture, classes: int) -> Architecture:
    """``arch`` with its classifier resized to ``classes`` outputs."""
    return Architecture((*arch.hidden, Softmax(classes)))


def load_matching(
    model: nn.Module, state_dict: dict[str, torch.Tensor]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Copy the tensors of ``state_dict`` whose names and shapes match ``model``'s.

    Args:
        model: The module to fill (in place).
        state_dict: Source weights.

    Returns:
        ``(transferred, reinitialised)``: names copied, and names of the model left as they were.
    """
    own = model.state_dict()
    fits = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fits, strict=False)
    return tuple(sorted(fits)), tuple(sorted(own.keys() - fits.keys()))


@dataclass(frozen=True)
class _Setup:
    """What every mode needs: the target-shaped architecture and a model builder."""

    arch: Architecture
    build: Callable[[], nn.Module]
    source_state: dict[str, torch.Tensor]


def _setup(ckpt: Checkpoint, target: Dataset, device: torch.device) -> _Setup:
    channels, size, _ = target.spec.input_shape
    arch = for_classes(ckpt.architecture, target.spec.num_classes)
    trace_shapes(arch, in_channels=channels, input_size=size)  # fail fast if it does not fit
    build = partial(build_model, arch, in_channels=channels, input_size=size,
                    config=ckpt.net_config, device=device)  # fmt: skip
    return _Setup(arch, build, ckpt.state_dict)


_ModeResult = tuple[nn.Module, int, int, tuple[str, ...], tuple[str, ...]]
"""``(model, steps, restarts, transferred names, reinitialised names)``."""


def _trained(
    setup: _Setup, target: Dataset, config: TrainConfig, device: torch.device,
    progress: bool, finetune: bool,
) -> _ModeResult:  # fmt: skip
    names: dict[str, tuple[str, ...]] = {}

    def factory() -> nn.Module:
        model = setup.build()
        if finetune:
            names["in"], names["out"] = load_matching(model, setup.source_state)
        else:
            names["out"] = tuple(sorted(model.state_dict()))
        return model

    result = train_model(factory, target.train, target.val, config, device=device,
                         progress=progress)  # fmt: skip
    if result.status != "ok":
        raise ConfigError(f"training on {target.name} diverged: {result.reason}")
    return result.model, result.total_steps, result.restarts, names.get("in", ()), names["out"]


def _as_is(
    setup: _Setup, target: Dataset, config: TrainConfig, device: torch.device, progress: bool
) -> _ModeResult:
    model = setup.build()
    transferred, reinitialised = load_matching(model, setup.source_state)
    if reinitialised:
        raise ConfigError(f"as_is needs every weight to fit {target.name}; these do not: "
                          f"{', '.join(reinitialised[:3])}")  # fmt: skip
    return model.eval(), 0, 0, transferred, reinitialised


#: Mode -> ``(setup, target, config, device, progress) -> _ModeResult``.
TRANSFER_MODES: dict[str, Callable[..., _ModeResult]] = {
    "as_is": _as_is,
    "scratch": partial(_trained, finetune=False),
    "finetuned": partial(_trained, finetune=True),
}


def transfer(
    ckpt: Checkpoint,
    target: Dataset,
    config: TrainConfig,
    *,
    modes: tuple[str, ...] = ("scratch", "finetuned"),
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> list[TransferRun]:
    """Train a checkpoint's architecture on another dataset, per mode, and test it there.

    Args:
        ckpt: The source model (architecture, net config and weights).
        target: The dataset to transfer to.
        config: Budget and recipe, the same for every mode (and seed: ``scratch`` and
            ``finetuned`` differ only in the starting weights).
        modes: Keys of :data:`TRANSFER_MODES`, run in order.
        device: Where to train.
        progress: Show progress bars.

    Returns:
        One :class:`TransferRun` per mode.

    Raises:
        ConfigError: For an unknown mode, an ``as_is`` whose weights do not all fit, or a
            training run that diverges.
        envs.layers.ArchitectureError: If the architecture cannot be built on the target's
            image size.
    """
    for mode in modes:
        if mode not in TRANSFER_MODES:
            raise ConfigError(f"unknown transfer mode {mode!r}; choose from "
                              f"{', '.join(TRANSFER_MODES)}")  # fmt: skip
    device = torch.device(device)
    setup = _setup(ckpt, target, device)
    runs = []
    for mode in modes:
        start = time.perf_counter()
        model, steps, restarts, moved, fresh = TRANSFER_MODES[mode](
            setup, target, config, device, progress
        )
        test = evaluate(model, target.test.to(device), batch_size=config.eval_batch_size)
        runs.append(TransferRun(
            mode=mode, source=ckpt.dataset, target=target.name, architecture=str(setup.arch),
            test_accuracy=test.accuracy, test_loss=test.loss, steps=steps, restarts=restarts,
            wall_time_s=time.perf_counter() - start, transferred=moved, reinitialised=fresh,
        ))  # fmt: skip
    return runs
