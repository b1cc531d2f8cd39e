"""Where architectures are evaluated: in this process, in local worker processes, or on Ray.

A backend takes architecture strings (:meth:`submit`) and hands back :class:`Outcome` s as
they finish (:meth:`wait`). Each worker builds its reward once from a
:class:`metaqnn.rewards.spec.RewardSpec`. A worker that dies or runs out of memory yields an
outcome of kind ``died`` / ``oom``, a failure around the model (unreadable data, a broken
setup) one of kind ``machinery``; the search decides whether to retry
(:mod:`metaqnn.search.failures`). Worker processes ignore Ctrl-C (the parent stops them) and
end with their parent, even one killed with ``kill -9`` (:mod:`metaqnn.search.lifeline`).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import torch

from envs.layers import Architecture
from metaqnn.errors import ConfigError
from metaqnn.rewards.result import EvaluatingReward, RewardResult, RewardShapeError
from metaqnn.rewards.spec import RewardSpec, build_reward
from metaqnn.search.failures import is_machinery_failure
from metaqnn.search.lifeline import ignoring_sigint, quiet_resource_tracker, tie_to_parent


@dataclass(frozen=True)
class Outcome:
    """What became of one evaluation.

    Attributes:
        architecture: The architecture string.
        kind: ``ok`` (``result`` holds the reward result), ``oom`` (out of memory), ``died``
            (the worker process died), ``machinery`` (a failure around the model: the data
            could not be read, the reward could not be set up) or ``error`` (the model
            failed).
        result: :class:`metaqnn.rewards.spec.RewardResult` fields as a dict (``ok`` only).
        error: What went wrong (empty when ok).
        worker: Which worker ran it (host:pid).
    """

    architecture: str
    kind: str
    result: RewardResult | None
    error: str
    worker: str


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Backend(Protocol):
    """Where evaluations run: architectures go in with :meth:`submit`, outcomes come back from
    :meth:`wait` as they finish. ``capacity`` is how many may be in flight at once."""

    capacity: int

    def submit(self, architecture: str) -> None: ...

    def in_flight(self) -> int: ...

    def wait(self) -> list[Outcome]: ...

    def close(self) -> None: ...


def _run(reward: EvaluatingReward, architecture: str) -> Outcome:
    """Evaluate one architecture with ``reward``, turning a model's failures into outcomes (a
    reward of the wrong shape is a setup error: it is raised, never recorded)."""
    try:
        result = reward.evaluate(Architecture.parse(architecture))
    except RewardShapeError:
        raise
    except torch.OutOfMemoryError as exc:
        return Outcome(architecture, "oom", None, f"out of memory: {exc}".strip(), _worker_name())
    except Exception as exc:  # any failure of one model is recorded, the search goes on
        kind = "machinery" if is_machinery_failure(exc) else "error"
        return Outcome(architecture, kind, None, f"{type(exc).__name__}: {exc}", _worker_name())
    return Outcome(architecture, "ok", result, "", _worker_name())


class InlineBackend:
    """Evaluates in this process, one architecture at a time (deterministic, no pool).

    Args:
        spec: The reward to build (or pass ``reward`` directly).
        reward: A ready reward (an :class:`~metaqnn.rewards.result.EvaluatingReward`).
    """

    capacity = 1

    def __init__(
        self, spec: RewardSpec | None = None, *, reward: EvaluatingReward | None = None
    ) -> None:
        if reward is None:
            if spec is None:
                raise ConfigError("InlineBackend needs a RewardSpec or a reward")
            reward = build_reward(spec)
        self.reward = reward
        self._queue: list[str] = []

    def submit(self, architecture: str) -> None:
        """Queue an architecture (it runs in :meth:`wait`)."""
        self._queue.append(architecture)

    def in_flight(self) -> int:
        """Architectures submitted and not yet handed back."""
        return len(self._queue)

    def wait(self) -> list[Outcome]:
        """Evaluate the oldest queued architecture and return its outcome."""
        if not self._queue:
            return []
        return [_run(self.reward, self._queue.pop(0))]

    def close(self) -> None:
        """Nothing to release."""


# ------------------------------------------------------------------ local processes
_REWARD: EvaluatingReward | None = None


def _init_worker(spec: RewardSpec, threads: int, parent: int) -> None:
    global _REWARD
    tie_to_parent(parent)
    torch.set_num_threads(threads)
    _REWARD = build_reward(spec)


def _evaluate_in_worker(architecture: str) -> Outcome:
    return _run(_REWARD, architecture)


class ProcessBackend:
    """Local worker processes (``spawn``), each building the reward once, with the CPU threads
    split between them. A worker that dies breaks the pool: its evaluations come back as
    ``died`` and a fresh pool is started. Workers ignore SIGINT (Ctrl-C reaches the whole
    process group; the parent stops them) and end when the parent does.

    Args:
        spec: The reward every worker builds.
        workers: Worker processes.
        threads: Torch threads per worker (default: CPU cores // workers, at least 1).
        queue: Architectures queued per worker beyond the one it runs (0: the agent samples
            the next one only when a worker is free).
    """

    def __init__(
        self, spec: RewardSpec, workers: int, *, threads: int | None = None, queue: int = 0
    ) -> None:
        if workers < 1:
            raise ConfigError(f"workers={workers}: need at least 1")
        self.spec, self.workers = spec, workers
        self.threads = threads or max(1, (os.cpu_count() or 1) // workers)
        self.capacity = workers * (1 + queue)
        self._futures: dict[cf.Future, str] = {}
        if os.name == "posix":
            quiet_resource_tracker()
        self._pool = self._start()

    def _start(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.spec, self.threads, os.getpid()),
        )

    def submit(self, architecture: str) -> None:
        """Start evaluating an architecture on a free worker."""
        with ignoring_sigint():  # workers start here: they inherit SIG_IGN from the start
            try:
                future = self._pool.submit(_evaluate_in_worker, architecture)
            except cf.BrokenExecutor:
                self._pool = self._start()
                future = self._pool.submit(_evaluate_in_worker, architecture)
        self._futures[future] = architecture

    def in_flight(self) -> int:
        """Architectures submitted and not yet handed back."""
        return len(self._futures)

    def wait(self) -> list[Outcome]:
        """Block until at least one evaluation finishes; return every finished one."""
        if not self._futures:
            return []
        done, _ = cf.wait(list(self._futures), return_when=cf.FIRST_COMPLETED)
        outcomes, broken = [], False
        for future in done:
            arch = self._futures.pop(future)
            try:
                outcomes.append(future.result())
            except cf.process.BrokenProcessPool as exc:
                broken = True
                outcomes.append(Outcome(arch, "died", None, f"worker process died: {exc}", "?"))
            except RewardShapeError:
                raise
            except Exception as exc:  # e.g. the reward could not be built in the worker
                error = f"{type(exc).__name__}: {exc}"
                outcomes.append(Outcome(arch, "machinery", None, error, "?"))
        if broken:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._start()
        return outcomes

    def close(self) -> None:
        """Stop the workers; evaluations still running are abandoned and their workers ended
        at once (on Ctrl-C, an error or a time limit, the program does not wait for them)."""
        if not self._futures:
            self._pool.shutdown(wait=False, cancel_futures=True)
            return
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        for process in processes:
            if process.is_alive():
                process.terminate()
        self._futures.clear()
        # waited for (the workers are gone): the pool's queues are released in order, and
        # the resource tracker has no leaked semaphores to warn about at exit
        self._pool.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------ Ray
class RayBackend:
    """Evaluations as Ray tasks (an optional extra: ``pip install 'metaqnn[ray]'``), one GPU
    per task when the cluster has GPUs.

    Args:
        spec: The reward every task builds (cached per worker process).
        workers: Tasks in flight at once.
        address: A Ray cluster address (None: start or join a local one).
    """

    def __init__(self, spec: RewardSpec, workers: int, *, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("--backend ray needs Ray: pip install 'metaqnn[ray]'") from None
        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        self.capacity = workers
        self._task = ray.remote(num_gpus=gpus, max_retries=0)(_ray_evaluate)
        self._refs: dict[Any, str] = {}
        self._spec = spec if not gpus else RewardSpec(**{**asdict(spec), "device": "cuda"})

    def submit(self, architecture: str) -> None:
        """Start a Ray task for an architecture."""
        self._refs[self._task.remote(self._spec, architecture)] = architecture

    def in_flight(self) -> int:
        """Tasks not yet handed back."""
        return len(self._refs)

    def wait(self) -> list[Outcome]:
        """Block until at least one task finishes; return every finished one."""
        if not self._refs:
            return []
        ready, _ = self._ray.wait(list(self._refs), num_returns=1)
        outcomes = []
        for ref in ready:
            arch = self._refs.pop(ref)
            try:
                outcomes.append(self._ray.get(ref))
            except Exception as exc:  # a dead worker surfaces as a Ray error
                outcomes.append(Outcome(arch, "died", None, f"{type(exc).__name__}: {exc}", "?"))
        return outcomes

    def close(self) -> None:
        """Cancel the tasks still running."""
        for ref in self._refs:
            self._ray.cancel(ref, force=True)


_RAY_REWARDS: dict[RewardSpec, EvaluatingReward] = {}


def _ray_evaluate(spec: RewardSpec, architecture: str) -> Outcome:
    if spec not in _RAY_REWARDS:
        _RAY_REWARDS[spec] = build_reward(spec)
    return _run(_RAY_REWARDS[spec], architecture)


#: Backends by name: (spec, workers, address) -> backend.
BACKENDS: dict[str, Callable[[RewardSpec, int, str | None], Backend]] = {
    "inline": lambda spec, workers, address: InlineBackend(spec),
    "process": lambda spec, workers, address: ProcessBackend(spec, workers),
    "ray": lambda spec, workers, address: RayBackend(spec, workers, address=address),
}


def build_backend(name: str, spec: RewardSpec, workers: int, address: str | None = None) -> Backend:
    """A backend by name (see :data:`BACKENDS`).

    Raises:
        ConfigError: For an unknown name.
    """
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; choose from {sorted(BACKENDS)}")
    return BACKENDS[name](spec, workers, address)
