"""The tabular benchmark: a table of every architecture of a space trained with one recipe,
its file format, and the Gymnasium environment whose reward is a lookup in it (numpy and
gymnasium only).

The package ships the MNIST table ``mnist-bench`` (:func:`shipped_tables`; every architecture
of the ``mnist-bench`` space trained twice), so one line gives a benchmark environment::

    env = gymnasium.make("metaqnn/CNNDesignBench-v0")            # table="mnist-bench"

A table file is one ``np.savez_compressed`` archive, readable with numpy alone::

    z = np.load("table.npz")       # allow_pickle stays False: no objects inside
    z["architectures"]             # (n,) str, the string form of each architecture
    z["seeds"]                     # (s,) int, the training seeds
    z["val_accuracy"]              # (n, s) float, NaN where a run is missing (partial table)
    z["test_accuracy"], z["train_seconds"]            # (n, s) float
    z["parameters"], z["flops"], z["gtn_reward"]      # (n,) per architecture
    json.loads(str(z["header"]))   # build command, machine, recipe, space, dataset, counts
    str(z["sha256"])               # checksum of everything else (see payload_sha256)

:func:`load_table` verifies the checksum: a corrupt or edited file is a one-line
:class:`BenchTableError` naming the file. :func:`save_table` writes one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from envs.cnn_design import CNNDesignEnv
from envs.layers import Architecture
from envs.space import SearchSpace

#: Version of the file layout; :func:`load_table` refuses others.
FORMAT_VERSION = 1
#: Per-(architecture, seed) arrays, shape (n, s).
RUN_ARRAYS: tuple[str, ...] = ("val_accuracy", "test_accuracy", "train_seconds")
#: Per-architecture arrays, shape (n,).
ARCH_ARRAYS: tuple[str, ...] = ("parameters", "flops", "gtn_reward")
#: Every array of the payload (what the checksum covers, with ``header``).
PAYLOAD: tuple[str, ...] = ("architectures", "seeds", *RUN_ARRAYS, *ARCH_ARRAYS, "header")


class BenchTableError(ValueError):
    """A table file that is missing, corrupt, edited, or lacks a requested result."""


#: Folder of the tables shipped with the package (package data).
TABLES_DIR = Path(__file__).resolve().parent / "tables"
#: The default table of :class:`CNNDesignBenchEnv`.
DEFAULT_TABLE = "mnist-bench"


def shipped_tables() -> list[str]:
    """Names of the tables shipped with the package (``mnist-bench``)."""
    return sorted(p.stem for p in TABLES_DIR.glob("*.npz"))


def table_path(table: str | os.PathLike[str]) -> Path:
    """The file of ``table``: a shipped table's name (``"mnist-bench"``) or a path.

    A bare name (no folder, no ``.npz``) that is not a shipped table is an error, so a typo
    does not read as a missing file.

    Raises:
        BenchTableError: If ``table`` is a bare name that names no shipped table.
    """
    text = os.fspath(table)
    if os.sep in text or "/" in text or text.endswith(".npz") or Path(text).is_file():
        return Path(text)
    shipped = TABLES_DIR / f"{text}.npz"
    if not shipped.is_file():
        raise BenchTableError(
            f"table {text!r}: not a shipped table ({', '.join(shipped_tables()) or 'none'}) "
            "and not a file"
        )
    return shipped


def payload_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 of the payload arrays: for each name of :data:`PAYLOAD` in order, its name,
    dtype, shape and bytes (C order)."""
    digest = hashlib.sha256()
    for name in PAYLOAD:
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def save_table(path: str | os.PathLike[str], arrays: Mapping[str, Any], header: dict) -> Path:
    """Write a table file (compressed ``.npz``) with its checksum.

    Args:
        path: The file to write (``.npz`` is not appended).
        arrays: Every name of :data:`PAYLOAD` but ``header``; shapes as in the module doc.
        header: JSON-serialisable facts about the table (``space`` must hold the
            :class:`SearchSpace` fields).

    Returns:
        The path written.
    """
    payload = {name: np.asarray(arrays[name]) for name in PAYLOAD if name != "header"}
    payload["architectures"] = payload["architectures"].astype(str)
    payload["header"] = np.array(json.dumps({**header, "format_version": FORMAT_VERSION}))
    _check_shapes(payload, str(path))
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **payload, sha256=np.array(payload_sha256(payload)))
    os.replace(tmp, path)
    return path


def _check_shapes(arrays: Mapping[str, np.ndarray], where: str) -> None:
    n, s = len(arrays["architectures"]), len(arrays["seeds"])
    for name in RUN_ARRAYS:
        if arrays[name].shape != (n, s):
            raise BenchTableError(f"{where}: {name} has shape {arrays[name].shape}, not {(n, s)}")
    for name in ARCH_ARRAYS:
        if arrays[name].shape != (n,):
            raise BenchTableError(f"{where}: {name} has shape {arrays[name].shape}, not {(n,)}")


@dataclass(frozen=True)
class BenchTable:
    """A loaded, verified table (see the module doc for the arrays)."""

    path: str
    header: dict[str, Any] = field(repr=False)
    architectures: np.ndarray = field(repr=False)
    seeds: np.ndarray = field(repr=False)
    arrays: dict[str, np.ndarray] = field(repr=False)
    index: dict[str, int] = field(repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.architectures)

    @property
    def space(self) -> SearchSpace:
        """The search space the table covers (from its header)."""
        fields = {f.name for f in dataclasses.fields(SearchSpace)}
        raw = {k: v for k, v in self.header["space"].items() if k in fields}
        tuples = {k: _tupled(v) for k, v in raw.items() if isinstance(v, list)}
        return SearchSpace(**{**raw, **tuples})

    def row(self, architecture: Architecture | str) -> int:
        """Row of an architecture (its string form is the key).

        Raises:
            BenchTableError: If the architecture is not in the table.
        """
        key = str(architecture)
        if key not in self.index:
            raise BenchTableError(f"{self.path}: no architecture {key} in the table")
        return self.index[key]

    @property
    def complete(self) -> bool:
        """Whether every (architecture, seed) has a result."""
        return bool(np.isfinite(self.arrays["val_accuracy"]).all())


def _tupled(value: Any) -> Any:
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


_CACHE: dict[tuple[str, int, int], BenchTable] = {}


def load_table(path: str | os.PathLike[str]) -> BenchTable:
    """Read a table file, or a shipped table by name (:func:`table_path`), and verify its
    checksum (loaded once per file version per process).

    Raises:
        BenchTableError: One line naming the file: missing, unreadable, not a table, another
            format version, or a checksum that does not match (corrupt or edited).
    """
    path = table_path(path)
    where = str(path)
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise BenchTableError(f"{where}: cannot read the table ({exc.strerror})") from None
    key = (str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _CACHE:
        _CACHE.clear()  # one table at a time is the common case; keep memory flat
        _CACHE[key] = _read(where)
    return _CACHE[key]


def _read(where: str) -> BenchTable:
    try:
        with np.load(where, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        message = " ".join(str(exc).split())[:200]
        raise BenchTableError(f"{where}: not a readable table file ({message})") from None
    missing = [name for name in (*PAYLOAD, "sha256") if name not in arrays]
    if missing:
        raise BenchTableError(f"{where}: not a table file (missing {', '.join(missing)})")
    if str(arrays["sha256"]) != payload_sha256(arrays):
        raise BenchTableError(f"{where}: checksum mismatch (the file is corrupt or was edited)")
    header = json.loads(str(arrays["header"]))
    if header.get("format_version") != FORMAT_VERSION:
        raise BenchTableError(
            f"{where}: table format {header.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    _check_shapes(arrays, where)
    names = [str(a) for a in arrays["architectures"]]
    return BenchTable(
        path=where,
        header=header,
        architectures=arrays["architectures"],
        seeds=arrays["seeds"],
        arrays={k: v for k, v in arrays.items() if k in (*RUN_ARRAYS, *ARCH_ARRAYS)},
        index={name: i for i, name in enumerate(names)},
    )


class CNNDesignBenchEnv(gym.Env):
    """:class:`~envs.cnn_design.CNNDesignEnv` whose reward is a lookup in a tabular benchmark.

    The same actions, observations, masks and rules as ``metaqnn/CNNDesign-v0`` (this env
    holds one and hands it the lookup as its ``reward_fn``); use it with
    ``sb3_contrib.MaskablePPO`` (:meth:`action_masks`). The terminal reward is the recorded
    **validation** accuracy; the test accuracy is only in ``info``, for reporting.

    ## Arguments
    ```python
    gymnasium.make("metaqnn/CNNDesignBench-v0", table="mnist-bench", table_seed="mean")
    ```
    * ``table``: a shipped table's name (default ``"mnist-bench"``, the MNIST table), a table
      file (see :func:`load_table`) or a loaded :class:`BenchTable`.
    * ``table_seed``: ``"mean"`` (the mean over the table's training seeds), one of the
      table's seeds (an int), or ``"random"`` (a seed drawn per lookup from the env's RNG, as
      NAS-Bench-201 does; seed it with ``reset(seed=...)``).
    * ``invalid_action_reward``, ``render_mode`` and any other keyword: passed to the
      ``CNNDesignEnv`` this env holds (its default when not given).

    ## Info at the end of an episode
    ``val_accuracy``, ``test_accuracy``, ``train_seconds`` (the recorded training time of
    this query), ``sim_time_s`` (the simulated clock: recorded training time summed over every
    architecture this env has looked up, across episodes; :meth:`reset_clock` sets it to 0),
    ``parameters``, ``flops``, ``gtn_reward`` and ``table_seed``.
    """

    metadata: ClassVar[dict[str, Any]] = CNNDesignEnv.metadata

    def __init__(
        self,
        table: str | os.PathLike[str] | BenchTable = DEFAULT_TABLE,
        table_seed: int | str = "mean",
        invalid_action_reward: float | None = None,
        render_mode: str | None = None,
        **env_options: Any,
    ) -> None:
        self.table = table if isinstance(table, BenchTable) else load_table(table)
        seeds = [int(s) for s in self.table.seeds]
        if table_seed not in ("mean", "random") and (
            isinstance(table_seed, bool) or table_seed not in seeds
        ):
            raise ValueError(
                f"table_seed={table_seed!r}: choose 'mean', 'random' or a seed of the table {seeds}"
            )
        self.table_seed = table_seed
        if invalid_action_reward is not None:
            env_options["invalid_action_reward"] = invalid_action_reward
        self._env = CNNDesignEnv(
            self.table.space, reward_fn=self._lookup, render_mode=render_mode, **env_options
        )
        self.render_mode = render_mode
        self.action_space = self._env.action_space
        self.observation_space = self._env.observation_space
        self.sim_time_s = 0.0
        self._found: dict[str, Any] | None = None
        self._runs = {name: self.table.arrays[name] for name in RUN_ARRAYS}

    @property
    def space(self) -> SearchSpace:
        """The table's search space."""
        return self._env.space

    def action_masks(self) -> np.ndarray:
        """Boolean mask over the actions: True where legal in the current state."""
        return self._env.action_masks()

    def reset_clock(self) -> None:
        """Set the simulated clock back to 0."""
        self.sim_time_s = 0.0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new, empty architecture (the simulated clock keeps running)."""
        super().reset(seed=seed)
        return self._env.reset(seed=seed, options=options)

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Append a layer or terminate; a finished architecture's reward is its table row."""
        self._found = None
        obs, reward, terminated, truncated, info = self._env.step(action)
        if self._found is not None:
            info.update(self._found)
        return obs, reward, terminated, truncated, info

    def render(self) -> str | None:
        """As ``CNNDesignEnv.render``."""
        return self._env.render()

    def lookup(self, architecture: Architecture | str) -> dict[str, Any]:
        """The recorded results of an architecture under this env's ``table_seed`` (the
        simulated clock does not move).

        Raises:
            BenchTableError: If it is not in the table, or has no result for that seed.
        """
        row = self.table.row(architecture)
        if self.table_seed == "mean":
            cols = slice(None)
        elif self.table_seed == "random":
            cols = int(self.np_random.integers(len(self.table.seeds)))
        else:
            cols = int(np.flatnonzero(self.table.seeds == self.table_seed)[0])
        values = {name: np.mean(array[row, cols]) for name, array in self._runs.items()}
        if not np.isfinite(values["val_accuracy"]):
            raise BenchTableError(
                f"{self.table.path}: {architecture} has no result for table_seed="
                f"{self.table_seed!r} (a partial table)"
            )
        found = {name: float(value) for name, value in values.items()}
        for name in ARCH_ARRAYS:
            found[name] = self.table.arrays[name][row].item()
        seed = self.table.seeds[cols] if isinstance(cols, int) else "mean"
        found["table_seed"] = seed if isinstance(seed, str) else int(seed)
        return found

    def _lookup(self, architecture: Architecture) -> float:
        found = self.lookup(architecture)
        self.sim_time_s += found["train_seconds"]
        self._found = {**found, "sim_time_s": self.sim_time_s}
        return found["val_accuracy"]
