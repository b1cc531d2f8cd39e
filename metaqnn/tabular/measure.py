"""One unit of a table build: train one architecture with one seed, or score one
architecture with the GTN teacher. A :class:`Measurer` holds what every unit needs (the
recipe's data, the teacher), built once per process, so a worker process keeps one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from envs.layers import Architecture
from metaqnn.core.nets import build_model, count_flops, count_parameters
from metaqnn.core.training import evaluate, train_architecture
from metaqnn.errors import ConfigError
from metaqnn.tabular.recipe import BenchData, BenchRecipe, load_bench_data
from metaqnn.tabular.store import GTNRow, RunRow


@dataclass(frozen=True)
class BuildJob:
    """What a process needs to measure any unit of one build (plain values, picklable)."""

    dataset: str
    """Dataset name."""
    recipe: BenchRecipe
    """The training recipe."""
    gtn_teacher: str | None = None
    """A shipped teacher's name or a meta-training checkpoint (None: no GTN column)."""
    data_root: str | None = None
    """Data root (None: ``$METAQNN_DATA`` or the default)."""


@dataclass(frozen=True)
class Task:
    """One unit: ``kind`` ``train`` (architecture ``idx`` with ``seed``) or ``gtn``."""

    kind: str
    idx: int
    architecture: str
    seed: int = 0


class Measurer:
    """Runs :class:`Task` s of one :class:`BuildJob` (loads data and teacher on first use)."""

    def __init__(self, job: BuildJob) -> None:
        self.job = job
        self._data: BenchData | None = None
        self._gtn: Callable[[Architecture], float] | None = None

    @property
    def data(self) -> BenchData:
        """The recipe's splits."""
        if self._data is None:
            self._data = load_bench_data(self.job.dataset, self.job.recipe, self.job.data_root)
        return self._data

    def run(self, task: Task) -> RunRow | GTNRow:
        """Measure one unit (see :data:`TASKS`)."""
        return TASKS[task.kind](self, task)

    def train(self, task: Task) -> RunRow:
        """Train ``task.architecture`` with ``task.seed``; score validation and test."""
        recipe, data = self.job.recipe, self.data
        arch = Architecture.parse(task.architecture)
        result = train_architecture(
            arch,
            data.train,
            data.val,
            recipe.train_config(task.seed),
            net_config=recipe.net_config(),
        )
        chance = 1.0 / data.dataset.spec.num_classes
        ok = result.status == "ok"
        test = evaluate(result.model, data.test).accuracy if ok else chance
        return RunRow(
            idx=task.idx,
            seed=task.seed,
            val_accuracy=result.val_accuracy if ok else chance,
            test_accuracy=test,
            train_seconds=result.wall_time_s,
            status=result.status,
        )

    def gtn(self, task: Task) -> GTNRow:
        """The GTN reward of ``task.architecture`` (the teacher's seed 0, one learner)."""
        start = time.perf_counter()
        if self._gtn is None:
            self._gtn = self._gtn_reward()
        result = self._gtn.evaluate(Architecture.parse(task.architecture))  # type: ignore[attr-defined]
        ok = result.status == "ok" and math.isfinite(result.reward)
        return GTNRow(
            idx=task.idx,
            reward=result.reward if ok else None,
            seconds=time.perf_counter() - start,
            status=result.status,
        )

    def _gtn_reward(self) -> Callable[[Architecture], float]:
        from metaqnn.rewards.gtn import GTNReward

        teacher, net = load_gtn_teacher(self.job)
        return GTNReward(
            teacher,
            self.data.dataset,
            steps=self.job.recipe.gtn_steps,
            val_size=self.job.recipe.val_eval_size,
            seed=0,
            **({"net_config": net} if net else {}),
        )


#: Task kind -> the method that measures it.
TASKS: dict[str, Callable[[Measurer, Task], RunRow | GTNRow]] = {
    "train": Measurer.train,
    "gtn": Measurer.gtn,
}


def load_gtn_teacher(job: BuildJob) -> tuple[torch.nn.Module, object]:
    """The job's teacher and the learner ``NetConfig`` it was meta-trained with (or None).

    Raises:
        ConfigError: If the teacher cannot be read or teaches another dataset (the message
            says why; a build records it and leaves the GTN column NaN).
    """
    from gtn.meta import checkpoint_file, load_meta_checkpoint, teacher_from_checkpoint
    from metaqnn.core.nets import NetConfig

    try:
        state = load_meta_checkpoint(checkpoint_file(str(job.gtn_teacher)))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    extra = state.get("extra", {})
    if extra.get("dataset") not in (None, job.dataset):
        raise ConfigError(
            f"GTN teacher {job.gtn_teacher!r} teaches {extra['dataset']!r}, the table is on "
            f"{job.dataset!r}"
        )
    net = NetConfig(**extra["net_config"]) if "net_config" in extra else None
    return teacher_from_checkpoint(state, "cpu"), net


def architecture_costs(
    architecture: str, recipe: BenchRecipe, in_channels: int, input_size: int
) -> tuple[int, int]:
    """``(parameters, flops)`` of an architecture as the recipe builds it (FLOPs of one
    forward pass of one image, :func:`metaqnn.core.nets.count_flops`)."""
    arch = Architecture.parse(architecture)
    model = build_model(
        arch, in_channels=in_channels, input_size=input_size, config=recipe.net_config()
    )
    flops = count_flops(arch, in_channels=in_channels, input_size=input_size)
    return count_parameters(model), flops
