"""Failures of the search's machinery, kept apart from the architectures' own failures.

An architecture that fails to train (an error in its model, a non-finite loss, out of memory
twice) is a result: it is recorded at ``1 / classes`` and the agent learns from it, as in
MetaQNN. A failure of the machinery around it (the worker process died, the data could not be
read, the reward could not be set up) says nothing about the architecture: after
:data:`MAX_ATTEMPTS` it is *parked* instead. A parked architecture is never recorded, the
agent never learns from it, it keeps its place in the schedule and stays in the store's
``pending`` table (with ``attempts = 0``), so ``--resume`` evaluates it again. When the
machinery fails on :data:`MAX_PARKED_IN_A_ROW` architectures in a row the search stops with a
:class:`MachineryError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from metaqnn.errors import MetaQNNError
from metaqnn.search.agent import Trajectory

if TYPE_CHECKING:
    from metaqnn.search.store import ModelRecord

#: Evaluation attempts of an architecture whose worker died, ran out of memory or met a
#: machinery failure.
MAX_ATTEMPTS = 2

#: Outcome kinds that are retried (up to :data:`MAX_ATTEMPTS`).
RETRIED = frozenset({"died", "oom", "machinery"})

#: Outcome kinds that are failures of the machinery, never an architecture's result.
MACHINERY = frozenset({"died", "machinery"})

#: Architectures parked in a row (no result in between) after which the search stops.
MAX_PARKED_IN_A_ROW = 3

#: The ``attempts`` of a parked architecture's ``pending`` row.
PARKED_ATTEMPTS = 0


class MachineryError(MetaQNNError):
    """The workers keep failing (the process dies, the data cannot be read): the search stops;
    the architectures concerned stay pending and ``--resume`` evaluates them again."""


def is_machinery_failure(exc: BaseException) -> bool:
    """Whether an exception raised while evaluating an architecture is the machinery's fault
    (the package's own errors: missing or unreadable data, a bad checkpoint, a broken setup;
    and operating-system errors) rather than the architecture's."""
    return isinstance(exc, MetaQNNError | OSError)


#: Reasons with which earlier versions recorded machinery failures as models' results.
LEGACY_REASONS = (
    "died: ",
    *(f"error: {name}: " for name in ("DatasetNotFoundError", "DataFormatError",
      "CheckpointError", "OSError", "FileNotFoundError", "PermissionError")),
)  # fmt: skip


def legacy_machinery_failures(models: list[ModelRecord]) -> list[ModelRecord]:
    """Rows that earlier versions recorded as failed models although the machinery failed
    (a dead worker, unreadable data): a resume evaluates them again."""
    return [m for m in models if m.status == "failed" and m.reason.startswith(LEGACY_REASONS)]


@dataclass
class InFlight:
    """An architecture dispatched and not yet recorded."""

    trajectory: Trajectory
    epsilon: float
    attempts: int


class Parking:
    """The architectures this run parked after machinery failures, and how many in a row.

    Args:
        limit: Parked architectures in a row at which :meth:`park` raises.
    """

    def __init__(self, limit: int = MAX_PARKED_IN_A_ROW) -> None:
        self.limit = limit
        self.parked: dict[str, str] = {}
        self.in_a_row = 0

    def __len__(self) -> int:
        return len(self.parked)

    def __contains__(self, architecture: object) -> bool:
        return architecture in self.parked

    def park(self, architecture: str, reason: str) -> None:
        """Park an architecture.

        Raises:
            MachineryError: When this is the ``limit``-th parked in a row.
        """
        self.parked[architecture] = reason
        self.in_a_row += 1
        if self.in_a_row >= self.limit:
            raise MachineryError(
                f"the machinery failed on {self.in_a_row} architectures in a row (last: "
                f"{architecture}: {reason}); nothing was recorded for them, and `metaqnn search "
                "--resume` evaluates them again once the cause is fixed"
            )

    def result(self) -> None:
        """A result came back: the machinery works."""
        self.in_a_row = 0

    def summary(self) -> str:
        """One line on what was parked (empty when nothing was)."""
        if not self.parked:
            return ""
        reasons = sorted(set(self.parked.values()))
        return (
            f"{len(self.parked)} architecture(s) not recorded after machinery failures "
            f"({'; '.join(reasons)[:300]}); `metaqnn search --resume` evaluates them again"
        )
