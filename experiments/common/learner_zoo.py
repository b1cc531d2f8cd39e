"""The learner types of the GTN robustness study and how learners of them are trained: by a
meta-trained GTN (all of its steps, and the first few of the same curriculum) or by real data
(MetaQNN's recipe for a number of epochs). Shared by ``learner_types`` and ``gtn_robustness``.

The study (see ``../shared/RESEARCH.md``, GTN section) names its learner types but does not
define them; :data:`LEARNER_TYPES` holds our reading of each name as an architecture of our
grammar, built with the net config the teacher was meta-trained with (weight norm +
batch-statistics batch norm, LeakyReLU 0.1, Kaiming init, no dropout).
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from envs.layers import Architecture, Conv, FullyConnected
from gtn.inner_loop import model_params, unroll
from gtn.meta import load_meta_checkpoint, teacher_from_checkpoint
from gtn.teacher import SyntheticTeacher
from metaqnn.core.data import Dataset, Split, load_dataset
from metaqnn.core.nets import NetConfig
from metaqnn.core.training import TrainConfig, evaluate, train_model
from metaqnn.errors import ConfigError
from metaqnn.teacher.shapes import fixed_learner_factory


@dataclass(frozen=True)
class LearnerType:
    """One learner type of the study.

    Attributes:
        architecture: The architecture at full width, in our grammar.
        reading: How we read the study's name (it gives names only).
    """

    architecture: str
    reading: str


#: The study's learner types as architectures (full width; see :func:`learner_architecture`).
LEARNER_TYPES: dict[str, LearnerType] = {
    "base": LearnerType(
        "[C(64,3,1), P(2,2), C(128,3,1), P(2,2), FC(256), SM(10)]",
        "the GTN paper's MNIST learner",
    ),
    "base_fc": LearnerType(
        "[C(64,3,1), P(2,2), C(128,3,1), P(2,2), FC(256), FC(256), SM(10)]",
        "base with a second fully connected layer",
    ),
    "base_larger": LearnerType(
        "[C(128,3,1), P(2,2), C(256,3,1), P(2,2), FC(512), SM(10)]",
        "base with every width doubled",
    ),
    "base_larger2": LearnerType(
        "[C(64,3,1), P(2,2), C(128,3,1), P(2,2), C(256,3,1), P(2,2), FC(256), SM(10)]",
        "base with a third conv-pool block",
    ),
    "base_larger3": LearnerType(
        "[C(64,3,1), C(64,3,1), P(2,2), C(128,3,1), C(128,3,1), P(2,2), FC(256), SM(10)]",
        "base with two convs per block (VGG-style)",
    ),
    "base_larger3_global_pooling": LearnerType(
        "[C(64,3,1), C(64,3,1), P(2,2), C(128,3,1), C(128,3,1), P(2,2), GAP, SM(10)]",
        "base_larger3 with global average pooling instead of FC(256)",
    ),
    "linear": LearnerType("[SM(10)]", "softmax regression on the pixels (no hidden layer)"),
}

#: The study's table: learner type -> (10 GTN steps, 1 epoch of real data, full GTN), test
#: accuracy on MNIST with a GTN meta-trained on one learner.
STUDY_TABLE: dict[str, tuple[float, float, float]] = {
    "base": (0.16, 0.95, 0.22),
    "base_fc": (0.97, 0.98, 0.98),
    "base_larger": (0.97, 0.98, 0.98),
    "base_larger2": (0.12, 0.96, 0.16),
    "base_larger3": (0.72, 0.97, 0.91),
    "base_larger3_global_pooling": (0.11, 0.96, 0.12),
    "linear": (0.62, 0.96, 0.61),
}


def scale_architecture(arch: Architecture, divisor: int) -> Architecture:
    """``arch`` with conv filters and FC widths divided by ``divisor`` (at least 1 each), as
    :meth:`envs.space.SearchSpace.scale_widths` does for a search space.

    Raises:
        ConfigError: If ``divisor`` is not a positive integer.
    """
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 1:
        raise ConfigError(f"width divisor must be a positive integer, got {divisor!r}")
    layers = []
    for layer in arch.layers:
        if isinstance(layer, Conv):
            layer = Conv(max(1, layer.filters // divisor), layer.kernel, layer.stride)
        elif isinstance(layer, FullyConnected):
            layer = FullyConnected(max(1, layer.width // divisor))
        layers.append(layer)
    return Architecture(tuple(layers))


def learner_architecture(name: str, divisor: int = 1, num_classes: int = 10) -> Architecture:
    """The architecture of learner type ``name`` with widths divided by ``divisor``.

    Raises:
        ConfigError: For an unknown type (the message lists the known ones).
    """
    if name not in LEARNER_TYPES:
        raise ConfigError(f"unknown learner type {name!r}; choose from {', '.join(LEARNER_TYPES)}")
    text = LEARNER_TYPES[name].architecture.replace("SM(10)", f"SM({num_classes})")
    return scale_architecture(Architecture.parse(text), divisor)


@dataclass(frozen=True)
class LoadedTeacher:
    """A meta-trained teacher with the dataset and learner net config it was trained with."""

    teacher: SyntheticTeacher
    data: Dataset
    net: NetConfig
    outer_steps: int
    extra: dict[str, Any]


def load_teacher(
    run_dir: str | Path,
    device: torch.device | str,
    data_root: str | None,
    data: Dataset | None = None,
) -> LoadedTeacher:
    """A `metaqnn gtn train` run folder's teacher, its dataset (loaded, or ``data`` when that
    is the same dataset) and its learner net config."""
    state = load_meta_checkpoint(run_dir)
    extra = state["extra"]
    if data is None or data.name != extra["dataset"]:
        data = load_dataset(extra["dataset"], root=data_root, val_size=extra["val_size"],
                            seed=extra["seed"], device=device)  # fmt: skip
    teacher = teacher_from_checkpoint(state, device)
    return LoadedTeacher(teacher, data, NetConfig(**extra["net_config"]), state["step"], extra)


def head(split: Split, n: int | None) -> Split:
    """The first ``n`` examples of a split (all of them for None or more than it holds)."""
    if n is None or n >= len(split):
        return split
    return Split(split.x[:n], split.y[:n])


def teach(
    teacher: SyntheticTeacher,
    arch: Architecture,
    data: Dataset,
    net: NetConfig,
    *,
    seed: int,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    keep: Sequence[int] = (),
    device: torch.device | str = "cpu",
) -> dict[int, nn.Module]:
    """A fresh learner of ``arch`` (initialisation ``seed``) taught by ``teacher`` on its
    materialised ``batches`` for all of them, and copies of it after the first ``keep`` steps
    of the same run (one unroll gives all).

    Returns:
        Step count -> the learner after that many steps (``len(batches)`` included).
    """
    steps = len(batches)
    learner = fixed_learner_factory(arch, data, net, device)(seed)
    params, buffers = model_params(learner)
    early = frozenset(k for k in keep if 0 < k < steps)
    result = unroll(learner, params, buffers, lambda t: batches[t], teacher.schedule, steps,
                    create_graph=False, keep_steps=early)  # fmt: skip
    states = {k: result.kept[k] for k in sorted(early)}
    states[steps] = result.params
    out: dict[int, nn.Module] = {}
    for k, values in states.items():
        model = copy.deepcopy(learner) if k != steps else learner
        with torch.no_grad():
            for name, param in model.named_parameters():
                param.copy_(values[name])
        out[k] = model.eval()
    return out


def train_real(
    arch: Architecture,
    data: Dataset,
    net: NetConfig,
    *,
    seed: int,
    epochs: int,
    val_images: int | None,
    device: torch.device | str = "cpu",
) -> nn.Module:
    """A fresh learner of ``arch`` (the same initialisation as :func:`teach` gives it for
    ``seed``) trained on real data with MetaQNN's recipe (Adam 0.001, batch 128) for
    ``epochs`` epochs, without MetaQNN's restarts (the study trained one epoch, once)."""
    factory = fixed_learner_factory(arch, data, net, device)
    config = TrainConfig(epochs=epochs, seed=seed, max_restarts=0)
    result = train_model(lambda: factory(seed), data.train, head(data.val, val_images), config,
                         device=device)  # fmt: skip
    return result.model.eval()


def split_accuracy(model: nn.Module, test: Split) -> float:
    """Test accuracy (evaluated in batches of 1,000: batch-statistics norms need batches)."""
    return evaluate(model, test, batch_size=1000).accuracy


class Clock:
    """CPU and wall seconds since creation (CPU time is what the budget counts: the machine
    is shared, so wall time depends on the neighbours)."""

    def __init__(self) -> None:
        self.cpu0, self.wall0 = time.process_time(), time.perf_counter()

    def read(self) -> dict[str, float]:
        """``{"cpu_s": ..., "wall_s": ...}`` so far."""
        return {"cpu_s": time.process_time() - self.cpu0,
                "wall_s": time.perf_counter() - self.wall0}  # fmt: skip


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = list(values)
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def fmt_mean_std(values: Sequence[float], digits: int = 2) -> str:
    """``0.97 ± 0.01 (n)``, or an em dash for no values."""
    if not values:
        return "—"
    mean, std = mean_std(values)
    return f"{mean:.{digits}f} ± {std:.{digits}f} ({len(values)})"


def cpu_footer(summary: dict[str, Any]) -> str:
    """The report's last line: CPU time of the measured units and of the whole run."""
    run = summary["run"]
    return (
        f"CPU time of the measured units: {summary['cpu_s_units']:.0f} s; the whole run "
        f"{run['cpu_s']:.0f} s CPU, {run['wall_s']:.0f} s wall (a shared machine: CPU time is "
        "the budget's measure)."
    )
