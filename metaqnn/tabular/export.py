"""Export a build folder as the table file that ships: one compressed ``.npz``, readable with
numpy alone, with its header and checksum (the format is :mod:`envs.bench`'s, which loads
and verifies it: :func:`envs.bench.load_table`)."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from envs.bench import load_table, save_table
from metaqnn.errors import ConfigError
from metaqnn.runinfo import package_version
from metaqnn.tabular.store import BenchStore

#: The most a table file may weigh (it ships in the package).
MAX_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_table` wrote."""

    path: str
    bytes: int
    architectures: int
    runs_done: int
    runs_total: int
    complete: bool


def table_arrays(store: BenchStore) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The store's rows as the table's arrays (NaN where missing), and the counts."""
    identity = store.identity
    seeds = np.array(identity["seeds"], dtype=np.int64)
    archs = store.architectures()
    n, column = len(archs), {int(s): j for j, s in enumerate(seeds)}
    runs = {name: np.full((n, len(seeds)), np.nan) for name in _RUN_FIELDS}
    diverged = 0
    for row in store.runs():
        for name in _RUN_FIELDS:
            runs[name][row.idx, column[row.seed]] = getattr(row, name)
        diverged += row.status != "ok"
    gtn = np.full(n, np.nan)
    gtn_rows = store.gtn_rows()
    for g in gtn_rows:
        gtn[g.idx] = np.nan if g.reward is None else g.reward
    arrays = {
        "architectures": np.array([a for _, a, _, _ in archs], dtype=str),
        "seeds": seeds,
        **runs,
        "parameters": np.array([p for _, _, p, _ in archs], dtype=np.int64),
        "flops": np.array([f for _, _, _, f in archs], dtype=np.int64),
        "gtn_reward": gtn,
    }
    counts = {
        "architectures": n,
        "seeds": len(seeds),
        "runs_done": int(np.isfinite(runs["val_accuracy"]).sum()),
        "runs_total": n * len(seeds),
        "runs_diverged": diverged,
        "gtn_done": len(gtn_rows),
    }
    return arrays, counts


_RUN_FIELDS = ("val_accuracy", "test_accuracy", "train_seconds")


def table_header(store: BenchStore, counts: dict[str, int]) -> dict[str, Any]:
    """The header: build command, machines, recipe, seeds, space, dataset, counts, versions."""
    identity = store.identity
    sessions = store.get_meta("sessions") or [{}]
    first = sessions[0]
    return {
        "command": store.get_meta("command"),
        "dataset": identity["dataset"],
        "space": identity["space"],
        "recipe": identity["recipe"],
        "seeds": identity["seeds"],
        "gtn_teacher": identity["gtn_teacher"],
        "gtn_note": store.get_meta("gtn_note") or "",
        "counts": counts,
        "complete": counts["runs_done"] == counts["runs_total"],
        "machine": {
            "hosts": store.hosts(),
            "platform": first.get("platform"),
            "cpu": first.get("device_name"),
            "cpu_count": first.get("cpu_count"),
            "threads_per_worker": first.get("threads_per_worker"),
        },
        "versions": {
            key: first.get(key) for key in ("metaqnn", "git_commit", "python", "torch", "numpy")
        },
        "exported_with": {"metaqnn": package_version(), "python": platform.python_version()},
        "sessions": sessions,
    }


def export_table(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    partial: bool = False,
    force: bool = False,
) -> ExportSummary:
    """Write a build folder's table as one verified ``.npz`` file.

    Args:
        run_dir: A folder of ``metaqnn bench build`` (it may be building: the store is read
            without the lock).
        out: The file to write.
        partial: Export an unfinished table (missing runs are NaN, ``complete`` false).
        force: Overwrite an existing ``out``.

    Returns:
        An :class:`ExportSummary`.

    Raises:
        ConfigError: No build in ``run_dir``, an unfinished table without ``partial``, an
            existing ``out`` without ``force``, or a file over :data:`MAX_BYTES`.
    """
    out = Path(out)
    if out.exists() and not force:
        raise ConfigError(f"{out} exists; pass --force to overwrite it")
    if not out.parent.is_dir():
        raise ConfigError(f"{out}: no such folder {out.parent}")
    store = BenchStore.read(run_dir)
    try:
        arrays, counts = table_arrays(store)
        if counts["runs_done"] < counts["runs_total"] and not partial:
            raise ConfigError(
                f"{run_dir}: the table is unfinished ({counts['runs_done']} of "
                f"{counts['runs_total']} runs); rerun its build command to finish it, or pass "
                "--partial"
            )
        header = table_header(store, counts)
    finally:
        store.close()
    save_table(out, arrays, header)
    size = out.stat().st_size
    if size > MAX_BYTES:
        out.unlink()
        raise ConfigError(f"{out}: {size} bytes, over the {MAX_BYTES} a shipped table may weigh")
    load_table(out)  # what was written reads back and verifies
    return ExportSummary(
        path=str(out),
        bytes=size,
        architectures=counts["architectures"],
        runs_done=counts["runs_done"],
        runs_total=counts["runs_total"],
        complete=header["complete"],
    )
