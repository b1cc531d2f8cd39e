"""The MetaQNN search loop: the agent samples architectures in the environment, workers
evaluate them, results update the agent through experience replay, and everything is written
to the run's :class:`~metaqnn.search.store.SearchStore` as it happens.

The loop is the single writer of the store and the Q-table. It keeps sampling while models
train (up to the backend's capacity); an architecture already evaluated reuses its stored
reward, one already in flight is not dispatched twice. A dispatch and a result are each one
transaction with the whole search state, so a killed search resumes exactly
(:meth:`Search.resume`): architectures in flight at the kill are dispatched again, nothing
recorded is evaluated again, and with one worker the same seed gives the same sequence.
A failure of the machinery (a worker died, the data could not be read) is not recorded as the
architecture's result: it stays pending for a resume (:mod:`metaqnn.search.failures`).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from envs.cnn_design import CNNDesignEnv, zero_reward
from metaqnn.errors import CheckpointError, ConfigError
from metaqnn.rewards.result import RewardResult, as_reward, reward_name
from metaqnn.rewards.spec import build_reward
from metaqnn.runlock import RunLock
from metaqnn.search.agent import QLearningAgent, trajectory_of
from metaqnn.search.config import SearchConfig
from metaqnn.search.cost import cost_masked
from metaqnn.search.failures import (
    MACHINERY,
    MAX_ATTEMPTS,
    PARKED_ATTEMPTS,
    RETRIED,
    InFlight,
    Parking,
    legacy_machinery_failures,
)
from metaqnn.search.integrity import check_state
from metaqnn.search.replay import ReplayMemory
from metaqnn.search.schedule import EpsilonSchedule
from metaqnn.search.store import ModelRecord, Pending, SearchStore
from metaqnn.search.workers import Backend, InlineBackend, Outcome, build_backend

__all__ = ["MAX_ATTEMPTS", "Logger", "Search", "SearchConfig"]


class Logger(Protocol):
    """Receives each recorded model as the search goes (e.g.
    :class:`metaqnn.search.tb.SearchLogger`)."""

    def log(self, record: ModelRecord, search: Search) -> None: ...

    def close(self) -> None: ...


#: The store's meta key naming a reward that was handed to the search as an object.
CUSTOM_REWARD_KEY = "custom_reward"


class Search:
    """A running search. Build it with :meth:`create` or :meth:`resume`, then :meth:`run`.

    Args:
        config: The search.
        store: Its store.
        reward: A reward to use instead of ``config.reward``: any callable
            ``Architecture -> float``, or an object with ``evaluate(architecture) ->
            RewardResult``. It runs in this process. Its name is recorded with the run, and a
            resume must hand over the same one.
        backend: Where evaluations run (None: built from the config, or in this process for
            ``reward``).
        logger: Receives each result (``log(record, search)``) and ``close()``; e.g.
            :class:`metaqnn.search.tb.SearchLogger`.

    Raises:
        RewardShapeError: If ``reward`` is neither callable with one argument nor an
            evaluating reward.
        ConfigError: If ``reward`` is not the reward the run was started with.
    """

    def __init__(
        self,
        config: SearchConfig,
        store: SearchStore,
        *,
        reward: object = None,
        backend: Backend | None = None,
        logger: Logger | None = None,
    ) -> None:
        stored = store.meta(CUSTOM_REWARD_KEY)
        if reward is not None:
            evaluating = as_reward(reward)  # a wrong shape fails here, before any model
            name = reward_name(getattr(evaluating, "fn", evaluating))
            if stored is None and store.count() == 0 and not store.pending():
                store.set_meta(CUSTOM_REWARD_KEY, name)
            elif stored != name:
                raise ConfigError(
                    f"{store.path} was searched with reward {stored or config.reward.name!r}, "
                    f"not {name!r}; resume it with the reward it started with"
                )
            backend = backend or InlineBackend(reward=evaluating)
        elif stored is not None:
            raise ConfigError(
                f"{store.path} was searched with the reward {stored!r} passed from Python; "
                "hand the same reward to Search.resume(run_dir, reward=...)"
            )
        self.config, self.store, self.logger = config, store, logger
        self._lock: RunLock | None = None  # set by create() and resume()
        self.space = config.search_space()
        self.schedule = EpsilonSchedule.parse(config.schedule)
        env = CNNDesignEnv(self.space, reward_fn=zero_reward)  # rewards come from workers
        self.env = cost_masked(env, config)  # under config.max_flops, if any
        self.agent = QLearningAgent(
            self.env.action_space.n, alpha=config.alpha, gamma=config.gamma, q_init=config.q_init
        )
        self.replay_memory = ReplayMemory(lambda arch: trajectory_of(self.env, arch))
        self.rng = np.random.default_rng(config.seed)
        self.samples = 0
        self.cache_hits = 0
        self.elapsed_s = 0.0
        self.in_flight: dict[str, InFlight] = {}
        self.parking = Parking()  # architectures the machinery failed on (see failures.py)
        self.models: list[ModelRecord] = store.models()
        self._by_arch = {m.architecture: m for m in self.models}
        state = store.state()
        if state is not None:
            self._load_state(state)
        for old in legacy_machinery_failures(self.models) if not store.readonly else []:
            entries = self.replay_memory.entries  # recorded so by an earlier version: again
            self.replay_memory.entries = [e for e in entries if e[0] != old.architecture]
            store.requeue(old.architecture, old.epsilon, self.state_dict())
            self.models.remove(old)
            del self._by_arch[old.architecture]
        if backend is None and config.backend != "inline":
            # workers build the reward themselves: a broken setup (missing data, a bad
            # teacher) must fail here, in one line, and not as every architecture's result
            build_reward(config.reward)
        self.backend = backend or build_backend(
            config.backend, config.reward, config.workers, config.address
        )
        for item in store.pending():  # in flight (or parked) when the last run stopped
            traj = trajectory_of(self.env, item.architecture)
            attempts = max(1, item.attempts)  # a parked one gets its attempts afresh
            self.in_flight[item.architecture] = InFlight(traj, item.epsilon, attempts)
            self.backend.submit(item.architecture)

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(cls, config: SearchConfig, run_dir: str | Path, **kwargs: Any) -> Search:
        """A new search whose store is created in ``run_dir``, which this process then owns
        (:class:`~metaqnn.runlock.RunLock`) until :meth:`close`. If anything fails, a folder
        this call created is removed again.

        Raises:
            RunInUseError: If another live process owns ``run_dir``.
        """
        from metaqnn.runinfo import run_metadata

        config.search_space()  # fail before creating anything
        existed = Path(run_dir).exists()
        lock = RunLock(run_dir).acquire()
        try:
            store = SearchStore.create(run_dir, config.to_dict(),
                                       run_metadata(config.reward.device))  # fmt: skip
            search = cls(config, store, **kwargs)
        except BaseException:
            lock.release()
            if not existed:
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        search._lock = lock
        return search

    @classmethod
    def resume(cls, run_dir: str | Path, *, workers: int | None = None, **kwargs: Any) -> Search:
        """Continue the search stored in ``run_dir`` (optionally with another worker count),
        owning the folder until :meth:`close`.

        Raises:
            RunInUseError: If another live process owns ``run_dir``.
        """
        run_path = Path(run_dir)
        lock = RunLock(run_path.parent if run_path.suffix == ".db" else run_path)
        if lock.run_dir.is_dir():
            lock.acquire()
        try:
            store = SearchStore.open(run_dir, readonly=False)
            config = SearchConfig.from_stored(store.config, store.path)
            if workers is not None:
                backend = config.backend
                if backend != "ray":  # one worker runs in process, several in worker processes
                    backend = "inline" if workers == 1 else "process"
                config = replace(config, workers=workers, backend=backend)
            search = cls(config, store, **kwargs)
        except BaseException:
            lock.release()
            raise
        search._lock = lock
        return search

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The whole mutable search state as plain JSON."""
        return {
            "agent": self.agent.state_dict(),
            "replay": self.replay_memory.state_dict(),
            "rng": self.rng.bit_generator.state,
            "samples": self.samples,
            "cache_hits": self.cache_hits,
            "elapsed_s": self.elapsed_s,
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        check_state(state, self.store.path, whole=True)
        try:
            self._load_state_dict(state)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            what = f"key {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
            raise CheckpointError(f"{self.store.path}: the stored search state is unusable "
                                  f"({what:.200})") from None  # fmt: skip

    def _load_state_dict(self, state: dict[str, Any]) -> None:
        self.agent = QLearningAgent.from_state_dict(state["agent"])
        if self.agent.num_actions != self.env.action_space.n:
            raise ConfigError(
                f"stored Q-table has {self.agent.num_actions} actions, the space "
                f"{self.env.action_space.n}"
            )
        self.replay_memory.load_state_dict(state["replay"])
        self.rng.bit_generator.state = state["rng"]
        self.samples, self.cache_hits = state["samples"], state["cache_hits"]
        self.elapsed_s = state.get("elapsed_s", 0.0)

    # ------------------------------------------------------------------ progress
    @property
    def done(self) -> int:
        """Unique models recorded."""
        return len(self.models)

    @property
    def _claimed(self) -> int:
        """Places of the schedule taken: recorded, in flight, or parked."""
        return self.done + len(self.in_flight) + len(self.parking)

    @property
    def finished(self) -> bool:
        """Whether the schedule's unique models are all recorded."""
        return self.done >= self.schedule.total

    def best(self) -> ModelRecord | None:
        """The best model so far."""
        return max(self.models, key=lambda m: m.reward, default=None)

    def reschedule(self, schedule: str) -> None:
        """Replace the epsilon schedule from here on (recorded in the store, so a resume
        keeps it); the models already recorded keep the epsilons they were sampled at.

        Raises:
            ConfigError: For a bad spec, or one with fewer models than are recorded.
        """
        new = EpsilonSchedule.parse(schedule)
        if new.total < self.done:
            raise ConfigError(f"schedule {schedule!r} has {new.total} models; {self.done} are "
                              "already recorded")  # fmt: skip
        self.config = replace(self.config, schedule=new.to_spec())
        self.schedule = new
        self.store.set_meta("config", self.config.to_dict())

    # ------------------------------------------------------------------ the loop
    def run(
        self,
        *,
        max_models: int | None = None,
        time_limit_s: float | None = None,
        progress: bool = True,
        announce_limit: bool = True,
    ) -> list[ModelRecord]:
        """Search until the schedule is done, ``max_models`` more models are recorded, or
        ``time_limit_s`` passes (architectures in flight then are dispatched again on resume;
        ``announce_limit`` says so on the console, off for a caller that runs in slices).
        Returns every recorded model."""
        start, start_done = time.monotonic(), self.done
        target = self.schedule.total
        if max_models is not None:
            target = min(target, self.done + max_models)
        bar = tqdm(
            total=self.schedule.total,
            initial=self.done,
            disable=not progress,
            unit="model",
            dynamic_ncols=True,
        )
        last = time.monotonic()
        try:
            while self.done < target:
                if time_limit_s is not None and time.monotonic() - start > time_limit_s:
                    if announce_limit:
                        bar.write(
                            f"time limit of {time_limit_s:.0f} s reached after {self.done} "
                            "models; resume with --resume"
                        )
                    break
                self._fill(target)
                if not self.backend.in_flight():
                    break
                for outcome in self.backend.wait():
                    now = time.monotonic()
                    self.elapsed_s += now - last
                    last = now
                    record = self._handle(outcome)
                    if record is not None:
                        bar.update(1)
                        bar.set_postfix_str(self._postfix(start, start_done), refresh=False)
                        if self.logger is not None:
                            self.logger.log(record, self)
            if self.parking:
                bar.write(self.parking.summary())
        finally:
            bar.close()
            if self.in_flight:
                self.backend.close()
        return self.models

    def close(self) -> None:
        """Release the workers, the logger, the store and the run folder."""
        self.backend.close()
        if self.logger is not None:
            self.logger.close()
        self.store.close()
        if self._lock is not None:
            self._lock.release()

    def _postfix(self, start: float, start_done: int) -> str:
        i = self.schedule.stage_index(self.done)
        stage = (
            "done"
            if i is None
            else f"eps {self.schedule.stages[i][0]:g} ({i + 1}/{len(self.schedule.stages)})"
        )
        rate = (self.done - start_done) / max(1e-9, time.monotonic() - start) * 60
        best = self.best()
        return (
            f"{stage}, unique {self.done}, best {best.reward:.4f}" if best else stage
        ) + f", {rate:.1f} models/min"

    def _fill(self, target: int) -> None:
        """Sample and dispatch until the backend is full (or the target is in flight)."""
        repeats = 0
        while self.backend.in_flight() < self.backend.capacity and self._claimed < target:
            epsilon = self.schedule.epsilon(self._claimed)
            trajectory = self.agent.episode(self.env, epsilon, self.rng)
            self.samples += 1
            arch = trajectory.architecture
            cached = self._by_arch.get(arch)
            if cached is not None:  # MetaQNN: reuse the stored reward, replay, do not count
                self.cache_hits += 1
                self.replay_memory.add(trajectory, cached.reward)
                self.replay_memory.replay(self.agent, self.config.replay, self.rng)
                repeats += 1
            elif arch in self.in_flight or arch in self.parking:  # not twice, and no reward
                repeats += 1
                if repeats >= 100:
                    return  # let results arrive first
            else:
                repeats = 0
                self.in_flight[arch] = InFlight(trajectory, epsilon, 1)
                self.store.record_dispatch(Pending(arch, epsilon, 1), self.state_dict())
                self.backend.submit(arch)
            if repeats >= self.config.max_repeats:
                if self.in_flight:
                    return
                raise ConfigError(
                    f"{repeats} samples in a row brought no new architecture: the "
                    "search space looks exhausted for this schedule"
                )

    def _handle(self, outcome: Outcome) -> ModelRecord | None:
        """Record one outcome (or dispatch it again after a dead worker / out of memory)."""
        item = self.in_flight.get(outcome.architecture)
        if item is None:  # not ours (e.g. a duplicate after a pool restart)
            return None
        arch = outcome.architecture
        if outcome.kind in RETRIED and item.attempts < MAX_ATTEMPTS:
            item.attempts += 1
            self.store.record_dispatch(Pending(arch, item.epsilon, item.attempts),
                                       self.state_dict())  # fmt: skip
            self.backend.submit(arch)
            return None
        del self.in_flight[arch]
        if outcome.kind in MACHINERY:  # not the architecture's result: pending for a resume
            self.store.record_dispatch(Pending(arch, item.epsilon, PARKED_ATTEMPTS),
                                       self.state_dict())  # fmt: skip
            self.parking.park(arch, f"{outcome.kind}: {outcome.error}"[:200])
            return None
        self.parking.result()
        result = outcome.result
        if outcome.kind != "ok" or result is None:  # MetaQNN: a failed model scores 1 / classes
            reason = f"{outcome.kind}: {outcome.error}"
            result = RewardResult.failed(outcome.architecture, reason, 1 / self.space.num_classes)
        self.replay_memory.add(item.trajectory, result.reward)
        self.replay_memory.replay(self.agent, self.config.replay, self.rng)
        record = self.store.record_result(
            result,
            epsilon=item.epsilon,
            worker=outcome.worker,
            attempts=item.attempts,
            state=self.state_dict(),
        )
        self.models.append(record)
        self._by_arch[record.architecture] = record
        return record
