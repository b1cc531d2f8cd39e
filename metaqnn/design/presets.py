"""What a design run assumes per dataset: the hand-designed baselines it must beat, the
search width, and how the teacher is meta-trained when none is given.

The baselines are nets a user writes in a minute (the README's and PyTorch's MNIST examples,
and the two digits nets of issue 18); they are trained with the same final recipe as the
designs, so the report compares like with like.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from metaqnn.errors import ConfigError


@dataclass(frozen=True)
class DatasetPreset:
    """Per-dataset defaults of ``metaqnn design``."""

    baselines: dict[str, str]
    """Name -> hand-designed architecture, trained with the final recipe."""
    width_divisor: int
    """Search width: the space's filters and FC widths divided by this during the search."""
    teacher: dict[str, Any] = field(default_factory=dict)
    """:class:`~metaqnn.teacher.run.TeacherRun` fields for a teacher meta-trained by the run."""


_MNIST_NETS = {
    "hand: README one-epoch net": "[C(32,3,1), P(2,2), C(64,3,1), P(2,2), FC(128), SM(10)]",
    "hand: PyTorch MNIST example": "[C(32,3,1), C(64,3,1), P(2,2), FC(128), SM(10)]",
}
#: The whole-space MNIST teacher's recipe at widths / 16 (experiments/RESULTS.md): the relative
#: step rule, a warm start on real images, then meta-training the learned schedule.
_MNIST_TEACHER = {
    "learner": "space", "width_divisor": 16, "inner_rule": "relative", "warm_start": 600,
    "meta_train": "schedule", "checkpoint_inner": True, "outer_steps": 2000,
}  # fmt: skip

#: Dataset name -> its preset.
PRESETS: dict[str, DatasetPreset] = {
    "digits": DatasetPreset(
        baselines={
            "hand: conv-conv-pool-fc": "[C(32,3,1), C(64,3,1), P(2,2), FC(128), SM(10)]",
            "hand: two wide convs": "[C(64,3,1), C(64,3,1), SM(10)]",
        },
        width_divisor=1,
        teacher={
            "inner_batch": 64,
            "generator_hidden": 256,
            "noise_dim": 32,
            "outer_lr": 0.01,
            "meta_batch": 256,
            "outer_steps": 300,
        },
    ),
    "mnist": DatasetPreset(_MNIST_NETS, width_divisor=16, teacher=_MNIST_TEACHER),
    "fashion-mnist": DatasetPreset(_MNIST_NETS, width_divisor=16, teacher=_MNIST_TEACHER),
    "cifar10": DatasetPreset(
        baselines={
            "hand: VGG-style 4 convs": "[C(64,3,1), C(64,3,1), P(2,2), C(128,3,1), "
            "C(128,3,1), P(2,2), FC(256), SM(10)]",
        },
        width_divisor=8,
        teacher={"learner": "space", "width_divisor": 8, "inner_rule": "relative"},
    ),
}


def get_preset(dataset: str) -> DatasetPreset:
    """The preset of ``dataset``.

    Raises:
        ConfigError: If ``metaqnn design`` has no preset for it.
    """
    if dataset not in PRESETS:
        raise ConfigError(
            f"metaqnn design has no preset for dataset {dataset!r}; choose from "
            f"{', '.join(PRESETS)}"
        )
    return PRESETS[dataset]
