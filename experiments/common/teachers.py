"""Teacher settings of the experiments: a config's ``TeacherRun`` table completed with what the
experiment's own config decides, and the teacher an experiment scores (a given run folder, or
one meta-trained in the scratch folder)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from experiments.harness import REPO_ROOT, Context
from gtn.meta import checkpoint_file
from metaqnn.errors import ConfigError
from metaqnn.teacher.run import TeacherRun


def with_config(settings: TeacherRun, key: str, **values: Any) -> TeacherRun:
    """``settings`` with the fields in ``values`` set: those the experiment takes from its own
    config (dataset, split, seed, ...), so that teacher and experiment agree.

    Args:
        settings: The config's teacher settings.
        key: Their config key (for the error message).
        **values: ``TeacherRun`` fields and the values the experiment gives them.

    Raises:
        ConfigError: If ``settings`` sets one of those fields to another value than the
            experiment's (a value other than ``TeacherRun``'s default counts as set).
    """
    default = TeacherRun()
    for name, value in values.items():
        own = getattr(settings, name)
        if own != value and own != getattr(default, name):
            raise ConfigError(
                f"{key}.{name}={own!r}: this experiment sets {name} from its config ({value!r})"
            )
    return dataclasses.replace(settings, **values)


def scored_teacher(ctx: Context, teacher: str, settings: TeacherRun, outer_steps: int) -> Path:
    """The teacher run an experiment scores: ``teacher`` (a run folder or checkpoint, relative
    to the repository root), used as it is; or, when ``teacher`` is empty, a run meta-trained
    (or reused) in ``ctx.work / "teacher"`` with ``settings`` for ``outer_steps``.

    Raises:
        ConfigError: If ``teacher`` holds no checkpoint.
    """
    if not teacher:
        return ctx.gtn(ctx.work / "teacher", settings, outer_steps)
    path = Path(teacher)
    path = path if path.is_absolute() else REPO_ROOT / path
    if not checkpoint_file(path).is_file():
        raise ConfigError(f"teacher {teacher!r}: no teacher checkpoint at {checkpoint_file(path)}")
    return path
