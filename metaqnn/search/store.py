"""The search's results store: one SQLite database per run (``search.db``).

One row per evaluated architecture, the architectures in flight, and the search state (the
agent's Q-table, the replay memory, the schedule position, RNG states) as JSON. Each dispatch
and each result is one transaction that also writes the state, so a process killed at any
moment (even ``kill -9``) leaves a database that resumes exactly: everything recorded is kept,
and nothing recorded is evaluated again.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from metaqnn.errors import CheckpointError, ConfigError
from metaqnn.rewards.result import RewardResult

FORMAT_VERSION = 1
DB_NAME = "search.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    id INTEGER PRIMARY KEY,
    architecture TEXT UNIQUE NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    reward REAL NOT NULL,
    val_accuracy REAL,
    test_accuracy REAL,
    parameters INTEGER,
    flops INTEGER,
    epsilon REAL NOT NULL,
    wall_time_s REAL,
    worker TEXT,
    attempts INTEGER NOT NULL,
    finished_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pending (
    architecture TEXT PRIMARY KEY,
    epsilon REAL NOT NULL,
    attempts INTEGER NOT NULL,
    dispatched_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS retrained (
    architecture TEXT PRIMARY KEY,
    epochs INTEGER NOT NULL,
    val_accuracy REAL,
    test_accuracy REAL,
    status TEXT NOT NULL,
    wall_time_s REAL,
    finished_at TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class ModelRecord:
    """One evaluated architecture (a row of ``models``); ``id`` is its 1-based order of
    completion."""

    id: int
    architecture: str
    status: str
    reason: str
    reward: float
    val_accuracy: float | None
    test_accuracy: float | None
    parameters: int | None
    flops: int | None
    epsilon: float
    wall_time_s: float | None
    worker: str
    attempts: int
    finished_at: str


@dataclass(frozen=True)
class Pending:
    """An architecture dispatched and not yet recorded."""

    architecture: str
    epsilon: float
    attempts: int


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class SearchStore:
    """A search's SQLite database. Use :meth:`create` for a new run, :meth:`open` to resume.

    Only the search loop writes to it (one writer); readers (``metaqnn report``, TensorBoard
    scripts) may open it at any time.
    """

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path, self._db = path, connection

    # ------------------------------------------------------------------ opening
    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        return db

    @classmethod
    def create(
        cls, run_dir: str | os.PathLike[str], config: dict[str, Any], run: dict[str, Any]
    ) -> SearchStore:
        """A new store in ``run_dir`` holding the search's config and run metadata.

        Raises:
            ConfigError: If ``run_dir`` already holds a search (resume it instead).
        """
        path = Path(run_dir) / DB_NAME
        if path.exists():
            raise ConfigError(
                f"{path} already exists: resume it with --resume {run_dir}, or "
                "pick another --logdir"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f".{DB_NAME}.*.tmp*"):  # a creation that was killed
            stale.unlink(missing_ok=True)
        # built under a temporary name, then renamed: a crash leaves nothing or a whole store
        tmp = path.parent / f".{DB_NAME}.{os.getpid()}.tmp"
        db = cls._connect(tmp)
        db.executescript(_SCHEMA)
        with db:
            db.execute("BEGIN")
            for key, value in (
                ("format_version", FORMAT_VERSION),
                ("config", config),
                ("run", run),
                ("created_at", _now()),
            ):
                db.execute("INSERT INTO meta VALUES (?, ?)", (key, json.dumps(value)))
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        for suffix in ("-wal", "-shm"):
            Path(f"{tmp}{suffix}").unlink(missing_ok=True)
        os.replace(tmp, path)
        return cls(path, cls._connect(path))

    @classmethod
    def open(cls, run_dir: str | os.PathLike[str]) -> SearchStore:
        """The store of an existing run (a run folder or its ``search.db``).

        Raises:
            CheckpointError: If there is no store there, or it is not one of ours.
        """
        path = Path(run_dir)
        if path.is_dir():
            path = path / DB_NAME
        if not path.is_file():
            raise CheckpointError(
                f"no search store at {path} (expected a run folder made by `metaqnn search`)"
            )
        try:
            db = cls._connect(path)
            version = db.execute("SELECT value FROM meta WHERE key='format_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise CheckpointError(f"{path} is not a search store: {exc}") from None
        if version is None or json.loads(version[0]) != FORMAT_VERSION:
            raise CheckpointError(
                f"{path}: unsupported store format {version}; expected {FORMAT_VERSION}"
            )
        return cls(path, db)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    # ------------------------------------------------------------------ reading
    def meta(self, key: str) -> Any:
        """A JSON value of the ``meta`` table (``config``, ``run``, ``state``...), or None."""
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON value under ``key`` in the run's ``meta`` table."""
        with self._db:
            self._db.execute(
                "INSERT INTO meta VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, json.dumps(value)),
            )

    @property
    def config(self) -> dict[str, Any]:
        """The search's config as stored at creation."""
        return self.meta("config")

    def state(self) -> dict[str, Any] | None:
        """The search state saved with the last dispatch or result (None before any)."""
        return self.meta("state")

    def models(self) -> list[ModelRecord]:
        """Every evaluated architecture, in order of completion."""
        names = [f.name for f in fields(ModelRecord)]
        rows = self._db.execute(f"SELECT {', '.join(names)} FROM models ORDER BY id").fetchall()
        return [ModelRecord(*row) for row in rows]

    def lookup(self, architecture: str) -> ModelRecord | None:
        """The record of an architecture, if it was evaluated."""
        names = [f.name for f in fields(ModelRecord)]
        row = self._db.execute(
            f"SELECT {', '.join(names)} FROM models WHERE architecture=?", (architecture,)
        ).fetchone()
        return None if row is None else ModelRecord(*row)

    def count(self) -> int:
        """Number of evaluated architectures."""
        return self._db.execute("SELECT COUNT(*) FROM models").fetchone()[0]

    def pending(self) -> list[Pending]:
        """Architectures dispatched and not yet recorded, in dispatch order."""
        rows = self._db.execute(
            "SELECT architecture, epsilon, attempts FROM pending ORDER BY rowid"
        ).fetchall()
        return [Pending(*row) for row in rows]

    def retrained(self) -> dict[str, dict[str, Any]]:
        """Retraining results by architecture."""
        cur = self._db.execute("SELECT * FROM retrained")
        names = [d[0] for d in cur.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}

    # ------------------------------------------------------------------ writing
    def _set_state(self, state: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO meta VALUES ('state', ?) ON CONFLICT(key) DO UPDATE SET "
            "value=excluded.value",
            (json.dumps(state),),
        )

    def record_dispatch(self, item: Pending, state: dict[str, Any]) -> None:
        """Mark an architecture as in flight and save the state, in one transaction."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO pending VALUES (?, ?, ?, ?) ON CONFLICT(architecture) DO UPDATE "
                "SET attempts=excluded.attempts, dispatched_at=excluded.dispatched_at",
                (item.architecture, item.epsilon, item.attempts, _now()),
            )
            self._set_state(state)

    def record_result(
        self,
        result: RewardResult,
        *,
        epsilon: float,
        worker: str,
        attempts: int,
        state: dict[str, Any],
    ) -> ModelRecord:
        """Insert one evaluated architecture with where and when it was sampled, clear it from
        ``pending`` and save the search ``state``, in one transaction. Non-finite
        measurements are stored as NULL. Returns the stored record."""
        row = {
            "architecture": result.architecture, "status": result.status,
            "reason": result.reason, "reward": result.reward,
            "val_accuracy": _finite(result.val_accuracy),
            "test_accuracy": _finite(result.test_accuracy), "parameters": result.parameters,
            "flops": result.flops, "epsilon": epsilon, "wall_time_s": result.wall_time_s,
            "worker": worker, "attempts": attempts, "finished_at": _now(),
        }  # fmt: skip
        names = [f.name for f in fields(ModelRecord) if f.name != "id"]
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            cur = self._db.execute(
                f"INSERT INTO models ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                [row[n] for n in names],
            )
            self._db.execute("DELETE FROM pending WHERE architecture=?", (row["architecture"],))
            self._set_state(state)
        self.checkpoint()
        return ModelRecord(id=cur.lastrowid, **{n: row[n] for n in names})

    def checkpoint(self) -> None:
        """Copy the write-ahead log into ``search.db`` (done after every recorded result, so
        that ``search.db`` alone is a whole, current copy of the run)."""
        self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def save_state(self, state: dict[str, Any]) -> None:
        """Save the search state alone."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._set_state(state)

    def record_retrained(self, architecture: str, epochs: int, result: dict[str, Any]) -> None:
        """Store a retraining result (``val_accuracy``, ``test_accuracy``, ``status``,
        ``wall_time_s``)."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR REPLACE INTO retrained VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    architecture,
                    epochs,
                    result.get("val_accuracy"),
                    result.get("test_accuracy"),
                    result["status"],
                    result.get("wall_time_s"),
                    _now(),
                ),
            )
