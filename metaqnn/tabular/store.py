"""The store of a table being built: one sqlite file (WAL) in the build folder, one row per
(architecture, seed) committed the moment it finishes, so ``kill -9`` loses only the runs in
flight and rerunning the same build continues where it stopped.

The store remembers the build's identity (space, dataset, recipe, seeds, teacher); opening it
with another identity is refused, so one folder never mixes two recipes. The folder can be
copied to another machine and the build continued there: each row records its host.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metaqnn.errors import ConfigError

#: File name of the store in a build folder.
STORE_NAME = "bench.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS archs (
    idx INTEGER PRIMARY KEY, architecture TEXT UNIQUE NOT NULL,
    parameters INTEGER NOT NULL, flops INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    idx INTEGER NOT NULL, seed INTEGER NOT NULL, val_accuracy REAL NOT NULL,
    test_accuracy REAL NOT NULL, train_seconds REAL NOT NULL, status TEXT NOT NULL,
    host TEXT NOT NULL, finished REAL NOT NULL, PRIMARY KEY (idx, seed));
CREATE TABLE IF NOT EXISTS gtn (
    idx INTEGER PRIMARY KEY, reward REAL, seconds REAL NOT NULL, status TEXT NOT NULL,
    host TEXT NOT NULL, finished REAL NOT NULL);
"""


@dataclass(frozen=True)
class RunRow:
    """The result of training one architecture with one seed.

    Attributes:
        idx: Row of the architecture (its position in the space's enumeration).
        seed: Training seed.
        val_accuracy: Validation accuracy (``1 / classes`` for a diverged model).
        test_accuracy: Test accuracy (``1 / classes`` for a diverged model).
        train_seconds: Wall seconds of training (validation after each epoch included).
        status: ``ok`` or ``diverged``.
    """

    idx: int
    seed: int
    val_accuracy: float
    test_accuracy: float
    train_seconds: float
    status: str


@dataclass(frozen=True)
class GTNRow:
    """The GTN reward of one architecture (``reward`` None when it could not be scored)."""

    idx: int
    reward: float | None
    seconds: float
    status: str


def _canonical(value: Any) -> Any:
    """JSON round trip: tuples become lists, so stored and fresh identities compare equal."""
    return json.loads(json.dumps(value, sort_keys=True))


class BenchStore:
    """A build folder's sqlite store (see the module doc).

    Args:
        run_dir: The build folder (created if missing).
        identity: Plain values that name the build; a store made with another identity is
            refused with a one-line :class:`~metaqnn.errors.ConfigError`.
    """

    def __init__(self, run_dir: str | os.PathLike[str], identity: dict[str, Any]) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / STORE_NAME
        self.host = platform.node() or "unknown"
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"{self.path}: cannot open the bench store ({exc})") from None
        self.identity = _canonical(identity)
        stored = self.get_meta("identity")
        if stored is None:
            self.set_meta("identity", self.identity)
        elif stored != self.identity:
            differs = _difference(stored, self.identity)
            raise ConfigError(f"{self.run_dir} holds another table ({differs}); use a new --out")

    @classmethod
    def read(cls, run_dir: str | os.PathLike[str]) -> BenchStore:
        """Open an existing store for reading, whatever its identity.

        Raises:
            ConfigError: If the folder holds no store.
        """
        path = Path(run_dir) / STORE_NAME
        if not path.is_file():
            raise ConfigError(f"{run_dir}: no bench build here (no {STORE_NAME})")
        db = sqlite3.connect(path, timeout=30, isolation_level=None)
        row = db.execute("SELECT value FROM meta WHERE key = 'identity'").fetchone()
        db.close()
        if row is None:
            raise ConfigError(f"{path}: a bench store without an identity")
        return cls(run_dir, json.loads(row[0]))

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str) -> Any:
        """A stored JSON value (None when absent)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON value."""
        self._db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value))
        )

    # ------------------------------------------------------------- the rows
    def add_architectures(self, rows: Iterable[tuple[int, str, int, int]]) -> None:
        """Store ``(idx, architecture, parameters, flops)`` rows, in one transaction."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO archs (idx, architecture, parameters, flops) VALUES (?, ?, ?, ?)",
                rows,
            )

    def architectures(self) -> list[tuple[int, str, int, int]]:
        """Every ``(idx, architecture, parameters, flops)``, by index."""
        return self._db.execute(
            "SELECT idx, architecture, parameters, flops FROM archs ORDER BY idx"
        ).fetchall()

    def record_run(self, row: RunRow) -> None:
        """Commit one run (a rerun of the same key replaces it)."""
        self._db.execute(
            "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (row.idx, row.seed, row.val_accuracy, row.test_accuracy, row.train_seconds,
             row.status, self.host, time.time()),
        )  # fmt: skip

    def record_gtn(self, row: GTNRow) -> None:
        """Commit one architecture's GTN reward."""
        self._db.execute(
            "INSERT OR REPLACE INTO gtn VALUES (?, ?, ?, ?, ?, ?)",
            (row.idx, row.reward, row.seconds, row.status, self.host, time.time()),
        )

    def done_runs(self) -> set[tuple[int, int]]:
        """The (idx, seed) keys already recorded."""
        return set(self._db.execute("SELECT idx, seed FROM runs").fetchall())

    def done_gtn(self) -> set[int]:
        """The architecture indices whose GTN reward is recorded."""
        return {r[0] for r in self._db.execute("SELECT idx FROM gtn").fetchall()}

    def runs(self) -> list[RunRow]:
        """Every recorded run."""
        rows = self._db.execute(
            "SELECT idx, seed, val_accuracy, test_accuracy, train_seconds, status FROM runs"
        ).fetchall()
        return [RunRow(*r) for r in rows]

    def gtn_rows(self) -> list[GTNRow]:
        """Every recorded GTN reward."""
        rows = self._db.execute("SELECT idx, reward, seconds, status FROM gtn").fetchall()
        return [GTNRow(*r) for r in rows]

    def hosts(self) -> list[str]:
        """The hosts that recorded runs."""
        rows = self._db.execute("SELECT DISTINCT host FROM runs ORDER BY host").fetchall()
        return [r[0] for r in rows]


def _difference(stored: dict[str, Any], asked: dict[str, Any]) -> str:
    """Which identity fields differ, e.g. ``recipe: stored 'short', asked 'smoke'``."""
    parts = []
    for key in sorted(set(stored) | set(asked)):
        a, b = stored.get(key), asked.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict) and a.get("name") != b.get("name"):
            a, b = a.get("name"), b.get("name")
        elif isinstance(a, dict) and isinstance(b, dict):
            fields = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            parts.append(f"{key} {a.get('name')!r} differs in {', '.join(fields)}")
            continue
        parts.append(f"{key}: stored {a!r}, asked {b!r}")
    return "; ".join(parts)
