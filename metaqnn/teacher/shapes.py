"""Where the GTN teacher meets architectures and datasets: teacher shapes per dataset, learner
factories (the paper's learner, or a fresh architecture from the search space at every outer
step). The GTN reward that uses them is :mod:`metaqnn.rewards.gtn`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from envs.layers import Architecture
from envs.space import SearchSpace
from gtn.distill import DistillConfig
from gtn.generator import GeneratorConfig
from gtn.teacher import GTNTeacher, TeacherConfig
from metaqnn.core.data import Dataset
from metaqnn.core.nets import NetConfig, build_model

#: GTN learners: weight norm then batch-statistics batch norm, LeakyReLU(0.1), Kaiming init, no
#: dropout. Batch statistics (no running statistics) because running statistics gathered on
#: synthetic batches do not fit real data.
GTN_LEARNER = NetConfig(
    norm="weight+batchstat", activation="leaky_relu", dropout=False, init="kaiming"
)

#: The GTN paper's learner per input shape (MNIST: conv64, pool, conv128, pool, FC256, FC10).
PAPER_LEARNERS: dict[str, str] = {
    "mnist": "[C(64,3,1), P(2,2), C(128,3,1), P(2,2), FC(256), SM(10)]",
    "fashion-mnist": "[C(64,3,1), P(2,2), C(128,3,1), P(2,2), FC(256), SM(10)]",
    "cifar10": "[C(64,3,1), P(2,2), C(128,3,1), P(2,2), FC(256), SM(10)]",
    "digits": "[C(32,3,1), P(2,2), FC(64), SM(10)]",
}


def pixel_range(dataset: Dataset) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel normalised values of pixels 0 and 1: the generator's output range."""
    low = tuple((0.0 - m) / s for m, s in zip(dataset.mean, dataset.std, strict=True))
    high = tuple((1.0 - m) / s for m, s in zip(dataset.mean, dataset.std, strict=True))
    return low, high


def teacher_config(dataset: Dataset, **overrides: object) -> TeacherConfig:
    """A :class:`TeacherConfig` whose generator is shaped by ``dataset``.

    ``overrides`` may set any TeacherConfig field, and generator fields prefixed ``generator_``
    (e.g. ``generator_hidden=256``).
    """
    channels, size, _ = dataset.spec.input_shape
    low, high = pixel_range(dataset)
    gen_fields = {
        k.removeprefix("generator_"): v for k, v in overrides.items() if k.startswith("generator_")
    }
    rest = {k: v for k, v in overrides.items() if not k.startswith("generator_")}
    generator = GeneratorConfig(
        channels=channels,
        image_size=size,
        num_classes=dataset.spec.num_classes,
        low=low,
        high=high,
        **gen_fields,
    )
    return TeacherConfig(generator=generator, **rest)


def load_teacher(
    dataset: Dataset, checkpoint: str | None = None, device: torch.device | str = "cpu"
) -> GTNTeacher:
    """The teacher of a meta-training run (folder or checkpoint), or with ``checkpoint`` None
    a freshly initialised teacher of the paper's shape for ``dataset`` (what benchmarks time:
    a teacher's weights do not change what it costs)."""
    from gtn.meta import load_meta_checkpoint, teacher_from_checkpoint

    if checkpoint:
        return teacher_from_checkpoint(load_meta_checkpoint(checkpoint), device)
    return GTNTeacher(teacher_config(dataset)).to(device)


def distill_config(dataset: Dataset, **overrides: object) -> DistillConfig:
    """A :class:`DistillConfig` (Dataset Distillation) shaped by ``dataset``."""
    channels, size, _ = dataset.spec.input_shape
    low, high = pixel_range(dataset)
    return DistillConfig(
        channels=channels,
        image_size=size,
        num_classes=dataset.spec.num_classes,
        low=low,
        high=high,
        **overrides,
    )


def _builder(
    dataset: Dataset, net_config: NetConfig, device: torch.device | str
) -> Callable[[Architecture, int], nn.Module]:
    """(architecture, seed) -> the module, seeded, shaped for ``dataset``'s images."""
    channels, size, _ = dataset.spec.input_shape

    def build(arch: Architecture, seed: int) -> nn.Module:
        gen = torch.Generator().manual_seed(seed)
        return build_model(
            arch,
            in_channels=channels,
            input_size=size,
            config=net_config,
            device=device,
            generator=gen,
        )

    return build


def fixed_learner_factory(
    arch: Architecture,
    dataset: Dataset,
    net_config: NetConfig = GTN_LEARNER,
    device: torch.device | str = "cpu",
) -> Callable[[int], nn.Module]:
    """Seed -> ``arch`` freshly initialised (the original GTN: new initialisations only)."""
    build = _builder(dataset, net_config, device)
    return lambda seed: build(arch, seed)


def space_learner_factory(
    space: SearchSpace,
    dataset: Dataset,
    net_config: NetConfig = GTN_LEARNER,
    device: torch.device | str = "cpu",
) -> Callable[[int], nn.Module]:
    """Seed -> a fresh architecture sampled from ``space``, freshly initialised (the default:
    it is what makes the teacher teach the whole space)."""
    build = _builder(dataset, net_config, device)
    return lambda seed: build(space.sample(np.random.default_rng(seed)), seed)
