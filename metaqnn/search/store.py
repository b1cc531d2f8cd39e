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
from metaqnn.search.integrity import check_row, check_state

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

    def __init__(
        self, path: Path, connection: sqlite3.Connection, *, readonly: bool = False
    ) -> None:
        self.path, self._db, self.readonly = path, connection, readonly

    # ------------------------------------------------------------------ opening
    @staticmethod
    def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
        if readonly:  # no journal set-up, no lock file: works in a folder nobody may write
            uri = f"{path.resolve().as_uri()}?mode=ro"
            try:
                db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
                db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError:  # a WAL store whose -shm file cannot be made
                db = sqlite3.connect(f"{uri}&immutable=1", uri=True, isolation_level=None)
            return db
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
    def open(cls, run_dir: str | os.PathLike[str], *, readonly: bool | None = None) -> SearchStore:
        """The store of an existing run (a run folder or its ``search.db``), checked whole:
        its pages (SQLite's ``quick_check``), its JSON values and the shape of the state.

        Args:
            run_dir: The run folder or its ``search.db``.
            readonly: Open for reading only (None: when the file or its folder cannot be
                written, as in a read-only copy of a run; writing then raises).

        Raises:
            CheckpointError: If there is no store there, it is not one of ours, it is
                damaged, or (``readonly=False``) it cannot be written.
        """
        path = Path(run_dir)
        if path.is_dir():
            path = path / DB_NAME
        if not path.is_file():
            raise CheckpointError(
                f"no search store at {path} (expected a run folder made by `metaqnn search`)"
            )
        writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
        if readonly is None:
            readonly = not writable
        elif not readonly and not writable:
            raise CheckpointError(f"{path} is read-only: it can be read (metaqnn report), "
                                  "not continued or written")  # fmt: skip
        try:
            db = cls._connect(path, readonly)
            problems = [row[0] for row in db.execute("PRAGMA quick_check(3)").fetchall()]
            meta = db.execute("SELECT key, value FROM meta").fetchall()
        except sqlite3.DatabaseError as exc:
            damaged = "malformed" in str(exc) or "corrupt" in str(exc)
            raise CheckpointError(
                f"{path} is {'damaged' if damaged else 'not a search store'}: {exc}"
            ) from None
        store = cls(path, db, readonly=readonly)
        if problems != ["ok"]:
            db.close()
            raise CheckpointError(f"{path} is damaged: {'; '.join(map(str, problems))[:200]}")
        version = dict(meta).get("format_version")
        if version is None or store._json("format_version", version) != FORMAT_VERSION:
            db.close()
            raise CheckpointError(
                f"{path}: unsupported store format {version}; expected {FORMAT_VERSION}"
            )
        try:
            for key, value in meta:
                store._json(key, value)
            check_state(store.state(), path)
        except CheckpointError:
            db.close()
            raise
        return store

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    # ------------------------------------------------------------------ reading
    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise CheckpointError(f"{self.path} cannot be read: {exc}") from None

    def _json(self, key: str, text: Any) -> Any:
        try:
            return json.loads(text)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{self.path}: the stored {key!r} is not JSON ({exc})") from None

    def meta(self, key: str) -> Any:
        """A JSON value of the ``meta`` table (``config``, ``run``, ``state``...), or None.

        Raises:
            CheckpointError: If the stored value is not JSON.
        """
        rows = self._rows("SELECT value FROM meta WHERE key=?", (key,))
        return None if not rows else self._json(key, rows[0][0])

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON value under ``key`` in the run's ``meta`` table."""
        self.check_writable()
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
        """Every evaluated architecture, in order of completion.

        Raises:
            CheckpointError: If a row holds a value of the wrong type (a reward that is not
                a number).
        """
        names = [f.name for f in fields(ModelRecord)]
        rows = self._rows(f"SELECT {', '.join(names)} FROM models ORDER BY id")
        return [self._record(row) for row in rows]

    def _record(self, row: tuple[Any, ...]) -> ModelRecord:
        record = ModelRecord(*row)
        check_row(record, self.path)
        return record

    def lookup(self, architecture: str) -> ModelRecord | None:
        """The record of an architecture, if it was evaluated."""
        names = [f.name for f in fields(ModelRecord)]
        rows = self._rows(
            f"SELECT {', '.join(names)} FROM models WHERE architecture=?", (architecture,)
        )
        return None if not rows else self._record(rows[0])

    def count(self) -> int:
        """Number of evaluated architectures."""
        return self._rows("SELECT COUNT(*) FROM models")[0][0]

    def pending(self) -> list[Pending]:
        """Architectures dispatched and not yet recorded, in dispatch order (``attempts``
        is 0 for one parked after machinery failures: see :mod:`metaqnn.search.failures`)."""
        rows = self._rows("SELECT architecture, epsilon, attempts FROM pending ORDER BY rowid")
        return [Pending(*row) for row in rows]

    def retrained(self) -> dict[str, dict[str, Any]]:
        """Retraining results by architecture."""
        names = ["architecture", "epochs", "val_accuracy", "test_accuracy", "status",
                 "wall_time_s", "finished_at"]  # fmt: skip
        rows = self._rows(f"SELECT {', '.join(names)} FROM retrained")
        return {row[0]: dict(zip(names, row, strict=True)) for row in rows}

    # ------------------------------------------------------------------ writing
    def check_writable(self) -> None:
        """Raise unless this store can be written.

        Raises:
            CheckpointError: If it was opened read-only (a read-only run folder).
        """
        if self.readonly:
            raise CheckpointError(f"{self.path} is read-only (opened for reading only): copy "
                                  "the run folder somewhere writable to change it")  # fmt: skip

    def _set_state(self, state: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO meta VALUES ('state', ?) ON CONFLICT(key) DO UPDATE SET "
            "value=excluded.value",
            (json.dumps(state),),
        )

    def record_dispatch(self, item: Pending, state: dict[str, Any]) -> None:
        """Mark an architecture as in flight and save the state, in one transaction."""
        self.check_writable()
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
        self.check_writable()
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

    def requeue(self, architecture: str, epsilon: float, state: dict[str, Any]) -> None:
        """Take a recorded architecture back to ``pending`` (to be evaluated again, at its
        epsilon) and save the search ``state``, in one transaction."""
        self.check_writable()
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM models WHERE architecture=?", (architecture,))
            self._db.execute("INSERT OR REPLACE INTO pending VALUES (?, ?, 1, ?)",
                             (architecture, epsilon, _now()))  # fmt: skip
            self._set_state(state)

    def checkpoint(self) -> None:
        """Copy the write-ahead log into ``search.db`` (done after every recorded result, so
        that ``search.db`` alone is a whole, current copy of the run)."""
        self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def save_state(self, state: dict[str, Any]) -> None:
        """Save the search state alone."""
        self.check_writable()
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._set_state(state)

    def record_retrained(self, architecture: str, epochs: int, result: dict[str, Any]) -> None:
        """Store a retraining result (``val_accuracy``, ``test_accuracy``, ``status``,
        ``wall_time_s``)."""
        self.check_writable()
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
