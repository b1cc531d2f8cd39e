"""Build a table: every architecture of a space, trained with a recipe for each seed, plus
parameters, FLOPs and the GTN reward; resumable, one owner per folder.

:func:`build_table` is ``metaqnn bench build``. It takes the folder's lock
(:class:`~metaqnn.runlock.RunLock`), opens the store (refusing a folder of another build),
enumerates the space (:func:`envs.enumerate.enumerate_architectures`) on first use, then
runs what is not yet recorded, in enumeration order, in this process or in ``workers``
spawned processes with one torch thread each. Every finished unit is committed at once, so
rerunning the same command after any stop (``kill -9`` included) continues the build.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import itertools
import multiprocessing
import os
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from envs.enumerate import enumerate_architectures
from envs.space import SearchSpace
from metaqnn.core.data import get_spec
from metaqnn.errors import ConfigError
from metaqnn.runinfo import run_metadata
from metaqnn.runlock import RunLock
from metaqnn.tabular.measure import (
    BuildJob,
    Measurer,
    Task,
    architecture_costs,
    load_gtn_teacher,
)
from metaqnn.tabular.store import BenchStore, GTNRow, RunRow

#: Torch threads per process measuring units (the recorded times are 1-thread times).
THREADS = 1


@dataclass(frozen=True)
class BuildSummary:
    """What a :func:`build_table` call did.

    Attributes:
        run_dir: The build folder.
        architectures: Architectures of the space.
        runs_done: (architecture, seed) runs recorded, now.
        runs_total: Runs of the whole table.
        gtn_done: GTN rewards recorded, now (0 when the column is off).
        measured: Units measured by this call.
        seconds: Wall seconds of this call.
        gtn_note: Why the GTN column is empty, or "".
    """

    run_dir: str
    architectures: int
    runs_done: int
    runs_total: int
    gtn_done: int
    measured: int
    seconds: float
    gtn_note: str

    @property
    def complete(self) -> bool:
        """Whether every run is recorded."""
        return self.runs_done == self.runs_total


def build_identity(space: SearchSpace, job: BuildJob, seeds: tuple[int, ...]) -> dict:
    """The plain values that name a build (a folder holds one build)."""
    return {
        "space": dataclasses.asdict(space),
        "dataset": job.dataset,
        "recipe": job.recipe.to_dict(),
        "seeds": list(seeds),
        "gtn_teacher": job.gtn_teacher,
    }


def _check_dataset(space: SearchSpace, dataset: str) -> None:
    spec = get_spec(dataset)
    channels, size, _ = spec.input_shape
    theirs = (space.input_channels, space.input_size, space.num_classes)
    if theirs != (channels, size, spec.num_classes):
        raise ConfigError(
            f"space {space.name!r} is for {theirs[0]}x{theirs[1]}x{theirs[1]} images of "
            f"{theirs[2]} classes; {dataset} has {channels}x{size}x{size}, {spec.num_classes}"
        )


def _check_seeds(seeds: tuple[int, ...]) -> None:
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or s < 0]
    if not seeds or bad or len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds {list(seeds)}: need distinct non-negative integers")


def build_table(
    run_dir: str | os.PathLike[str],
    space: SearchSpace,
    job: BuildJob,
    seeds: tuple[int, ...] = (0, 1),
    *,
    workers: int = 1,
    max_units: int | None = None,
    progress: bool | None = None,
    command: str | None = None,
) -> BuildSummary:
    """Build (or continue building) the table of ``space`` under ``job`` in ``run_dir``.

    Args:
        run_dir: The build folder (created if missing).
        space: The search space; every architecture of it is trained.
        job: Dataset, recipe, teacher.
        seeds: Training seeds of every architecture.
        workers: Processes measuring units at once (1: this process).
        max_units: Stop after measuring this many units (None: all); a build in chunks.
        progress: Show a progress bar (None: when stderr is a terminal).
        command: The command line to record (default: this process's).

    Returns:
        A :class:`BuildSummary`.

    Raises:
        ConfigError: A bad argument, a folder of another build, or a folder in use.
    """
    start = time.perf_counter()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers={workers!r}: need an integer >= 1")
    _check_seeds(seeds)
    _check_dataset(space, job.dataset)
    with RunLock(run_dir):
        store = BenchStore(run_dir, build_identity(space, job, seeds))
        try:
            gtn_note = _prepare(store, space, job, command)
            tasks = list(_pending(store, seeds, job.gtn_teacher is not None and not gtn_note))
            tasks = tasks if max_units is None else tasks[:max_units]
            measured = _measure(store, job, tasks, workers, progress, seeds)
            archs = store.architectures()
            return BuildSummary(
                run_dir=str(run_dir),
                architectures=len(archs),
                runs_done=len(store.done_runs()),
                runs_total=len(archs) * len(seeds),
                gtn_done=len(store.done_gtn()),
                measured=measured,
                seconds=time.perf_counter() - start,
                gtn_note=gtn_note,
            )
        finally:
            store.close()


def _prepare(store: BenchStore, space: SearchSpace, job: BuildJob, command: str | None) -> str:
    """Enumerate the space into a new store, log this session; returns the GTN note."""
    if not store.architectures():
        spec = get_spec(job.dataset)
        channels, size, _ = spec.input_shape
        try:
            archs = [str(a) for a in enumerate_architectures(space)]
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        store.add_architectures(
            (i, a, *architecture_costs(a, job.recipe, channels, size)) for i, a in enumerate(archs)
        )
        store.set_meta("command", command or shlex.join(["metaqnn", *sys.argv[1:]]))
    gtn_note = ""
    if job.gtn_teacher is None:
        gtn_note = "no GTN teacher was named (--gtn-teacher none)"
    else:
        try:
            load_gtn_teacher(job)
        except ConfigError as exc:
            gtn_note = f"the GTN teacher cannot score this table: {exc}"
    store.set_meta("gtn_note", gtn_note)
    sessions = store.get_meta("sessions") or []
    sessions.append({
        "command": command or shlex.join(["metaqnn", *sys.argv[1:]]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": store.host,
        "threads_per_worker": THREADS,
        "cpu_count": os.cpu_count(),
        **run_metadata("cpu"),
    })  # fmt: skip
    store.set_meta("sessions", sessions)
    return gtn_note


def _pending(store: BenchStore, seeds: tuple[int, ...], gtn: bool) -> Iterator[Task]:
    """Units not yet recorded, architecture by architecture (its seeds, then its GTN)."""
    runs, scored = store.done_runs(), store.done_gtn()
    for idx, arch, _, _ in store.architectures():
        for seed in seeds:
            if (idx, seed) not in runs:
                yield Task("train", idx, arch, seed)
        if gtn and idx not in scored:
            yield Task("gtn", idx, arch)


def _record(store: BenchStore, row: RunRow | GTNRow) -> None:
    if isinstance(row, RunRow):
        store.record_run(row)
    else:
        store.record_gtn(row)


def _measure(
    store: BenchStore,
    job: BuildJob,
    tasks: list[Task],
    workers: int,
    progress: bool | None,
    seeds: tuple[int, ...],
) -> int:
    """Measure ``tasks``, committing each result as it arrives; returns how many."""
    show = sys.stderr.isatty() if progress is None else progress
    total = len(store.architectures()) * len(seeds)
    bar = tqdm(total=total, initial=len(store.done_runs()), unit="run", disable=not show)
    done = 0
    with bar:
        for row in _results(job, tasks, workers):
            _record(store, row)
            done += 1
            bar.update(1 if isinstance(row, RunRow) else 0)
    return done


def _results(job: BuildJob, tasks: list[Task], workers: int) -> Iterator[RunRow | GTNRow]:
    """Results of ``tasks`` as they finish (at most ``workers`` in flight)."""
    if not tasks:
        return
    if workers == 1:
        threads = torch.get_num_threads()
        torch.set_num_threads(THREADS)
        try:
            measurer = Measurer(job)
            for task in tasks:
                yield measurer.run(task)
        finally:
            torch.set_num_threads(threads)
        return
    context = multiprocessing.get_context("spawn")
    queue = iter(tasks)
    with cf.ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                initargs=(job,)) as pool:  # fmt: skip
        flight = {pool.submit(_run_in_worker, t) for t in itertools.islice(queue, workers)}
        while flight:
            finished, flight = cf.wait(flight, return_when=cf.FIRST_COMPLETED)
            for future in finished:
                yield future.result()
                task = next(queue, None)
                if task is not None:
                    flight.add(pool.submit(_run_in_worker, task))


_WORKER: Measurer | None = None


def _init_worker(job: BuildJob) -> None:
    global _WORKER
    torch.set_num_threads(THREADS)
    _WORKER = Measurer(job)


def _run_in_worker(task: Task) -> RunRow | GTNRow:
    assert _WORKER is not None
    return _WORKER.run(task)


def default_run_dir(space: SearchSpace) -> Path:
    """``runs/bench/<space name>``."""
    return Path("runs") / "bench" / space.name
