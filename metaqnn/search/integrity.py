"""Checks of what a search store holds, so that a damaged or edited ``search.db`` is one
:class:`~metaqnn.errors.CheckpointError` naming the file and the fault, never a traceback
from deep inside the search or the report."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from metaqnn.errors import CheckpointError

if TYPE_CHECKING:
    from metaqnn.search.store import ModelRecord

#: Keys the search state (the ``state`` meta value) must have.
STATE_KEYS = ("agent", "replay", "rng", "samples", "cache_hits")

#: Numeric columns of a model row: name -> (may be NULL, must be an integer).
NUMERIC_COLUMNS = {
    "reward": (False, False),
    "epsilon": (False, False),
    "attempts": (False, True),
    "val_accuracy": (True, False),
    "test_accuracy": (True, False),
    "parameters": (True, True),
    "flops": (True, True),
    "wall_time_s": (True, False),
}


def check_state(state: Any, path: object, *, whole: bool = False) -> None:
    """Check the shape of a stored search state (None: none stored yet).

    Args:
        state: The stored state.
        path: The store, for the message.
        whole: Also require the :data:`STATE_KEYS` (what a resume needs; the store itself
            keeps any object).

    Raises:
        CheckpointError: If it is not an object (or, ``whole``, lacks a key).
    """
    if state is None:
        return
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path}: the stored search state is a {type(state).__name__}, not an object"
        )
    missing = [key for key in STATE_KEYS if key not in state]
    if whole and missing:
        raise CheckpointError(f"{path}: the stored search state lacks {', '.join(missing)}")


def check_row(record: ModelRecord, path: object) -> None:
    """Check the types of one model row.

    Raises:
        CheckpointError: Naming the row, the column and the value, if a number is not one
            (or the architecture is not a string).
    """
    if not isinstance(record.architecture, str):
        raise CheckpointError(f"{path}: model {record.id} has architecture "
                              f"{record.architecture!r:.60}, not a string")  # fmt: skip
    for name, (nullable, integer) in NUMERIC_COLUMNS.items():
        value = getattr(record, name)
        if value is None and nullable:
            continue
        kinds = int if integer else int | float
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise CheckpointError(
                f"{path}: model {record.id} ({record.architecture}) has {name} "
                f"{value!r:.60}, not {'an integer' if integer else 'a number'}"
            )
