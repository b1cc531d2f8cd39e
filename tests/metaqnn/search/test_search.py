import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zlib
from collections import Counter

import numpy as np
import pytest
import torch

from metaqnn.errors import CheckpointError, ConfigError
from metaqnn.rewards.result import RewardResult
from metaqnn.rewards.spec import RewardSpec
from metaqnn.search.loop import Search, SearchConfig
from metaqnn.search.store import SearchStore
from metaqnn.search.workers import InlineBackend, Outcome, ProcessBackend


class FakeReward:
    """A deterministic reward from the architecture string; counts evaluations, and can fail."""

    def __init__(self, fail: dict[str, list[type[Exception]]] | None = None, value=None):
        self.calls: Counter[str] = Counter()
        self.fail = fail or {}
        self.value = value or (lambda text: (zlib.crc32(text.encode()) % 1000) / 1000)

    def evaluate(self, arch):
        text = str(arch)
        self.calls[text] += 1
        plan = self.fail.get(text, [])
        if len(plan) >= self.calls[text]:
            raise plan[self.calls[text] - 1]("boom")
        value = self.value(text)
        return RewardResult(text, value, "ok", "", value, None, 10, 20, 1, 0, 0.01)


def _config(schedule="1.0:12,0.5:8,0.1:8", **kw):
    return SearchConfig(reward=RewardSpec(name="real", dataset="digits"), schedule=schedule,
                        replay=20, seed=kw.pop("seed", 0), **kw)  # fmt: skip


def _search(tmp_path, name="run", reward=None, **kw):
    reward = reward or FakeReward()
    return Search.create(_config(**kw), tmp_path / name, backend=InlineBackend(reward=reward))


def _sequence(search):
    return [m.architecture for m in search.models]


def test_search_records_every_unique_model_once(tmp_path):
    reward = FakeReward()
    search = _search(tmp_path, reward=reward)
    models = search.run(progress=False)
    assert len(models) == 28 == len({m.architecture for m in models})
    assert all(n == 1 for n in reward.calls.values()) and len(reward.calls) == 28
    assert search.samples == 28 + search.cache_hits
    assert [m.epsilon for m in models] == [1.0] * 12 + [0.5] * 8 + [0.1] * 8
    assert len(search.replay_memory) == search.samples  # cache hits are replayed too
    store = SearchStore.open(tmp_path / "run")
    assert [m.architecture for m in store.models()] == _sequence(search)
    assert store.pending() == [] and store.state()["samples"] == search.samples


def test_same_seed_same_sequence_other_seed_other(tmp_path):
    a = _search(tmp_path, "a").run(progress=False)
    b = _search(tmp_path, "b").run(progress=False)
    c = _search(tmp_path, "c", seed=1).run(progress=False)
    assert [m.architecture for m in a] == [m.architecture for m in b]
    assert [m.architecture for m in a] != [m.architecture for m in c]


def test_agent_learns_to_prefer_high_rewards(tmp_path):
    """A reward that favours nets starting with C(64,...): the greedy stage finds them."""
    reward = FakeReward(value=lambda text: 0.9 if text.startswith("[C(64,") else 0.1)
    search = _search(tmp_path, reward=reward, schedule="1.0:40,0.1:20", alpha=0.1)
    models = search.run(progress=False)
    random_mean = np.mean([m.reward for m in models if m.epsilon == 1.0])
    greedy_mean = np.mean([m.reward for m in models if m.epsilon == 0.1])
    assert greedy_mean > random_mean + 0.1


def test_resume_continues_exactly(tmp_path):
    straight = _search(tmp_path, "straight")
    straight.run(progress=False)
    first = _search(tmp_path, "split")
    first.run(progress=False, max_models=11)
    first.close()  # as a stopped process: the store and the run folder are released
    reward = FakeReward()
    second = Search.resume(tmp_path / "split", backend=InlineBackend(reward=reward))
    assert second.done == 11
    second.run(progress=False)
    assert _sequence(second) == _sequence(straight)
    assert not set(reward.calls) & set(_sequence(second)[:11])  # nothing evaluated again
    assert second.agent.q.keys() == straight.agent.q.keys()
    assert all(np.allclose(second.agent.q[k], straight.agent.q[k]) for k in straight.agent.q)


def test_in_flight_at_a_kill_is_dispatched_again(tmp_path):
    """A dispatched, unrecorded architecture (the process died mid-evaluation) is evaluated
    on resume, and the sequence is the uninterrupted one."""
    straight = _search(tmp_path, "straight")
    straight.run(progress=False)

    target = _sequence(straight)[5]
    search = _search(tmp_path, "killed", reward=_Dies(FakeReward(), target))
    with pytest.raises(_Dies.Death):
        search.run(progress=False)
    search.close()  # the process died: the OS releases its run folder
    assert SearchStore.open(tmp_path / "killed").pending()[0].architecture == target
    resumed = Search.resume(tmp_path / "killed", backend=InlineBackend(reward=FakeReward()))
    resumed.run(progress=False)
    assert _sequence(resumed) == _sequence(straight)


class _Dies:
    """Wraps a reward; evaluating ``target`` kills the 'process' (a BaseException)."""

    class Death(BaseException):
        pass

    def __init__(self, reward, target):
        self.reward, self.target = reward, target

    def evaluate(self, arch):
        if str(arch) == self.target:
            raise _Dies.Death
        return self.reward.evaluate(arch)


def test_oom_gets_one_retry_then_failure_is_recorded(tmp_path):
    probe = _search(tmp_path, "probe")
    probe.run(progress=False, max_models=4)
    once, twice = _sequence(probe)[1], _sequence(probe)[3]
    oom = torch.OutOfMemoryError
    reward = FakeReward(fail={once: [oom], twice: [oom, oom]})
    search = _search(tmp_path, "oom", reward=reward)
    models = {m.architecture: m for m in search.run(progress=False, max_models=4)}
    assert models[once].status == "ok" and models[once].attempts == 2
    assert models[twice].status == "failed" and models[twice].attempts == 2
    assert "out of memory" in models[twice].reason and models[twice].reward == pytest.approx(0.1)


def test_an_error_is_recorded_as_failed_at_chance(tmp_path):
    probe = _search(tmp_path, "probe")
    probe.run(progress=False, max_models=2)
    bad = _sequence(probe)[0]
    search = _search(tmp_path, "err", reward=FakeReward(fail={bad: [RuntimeError]}))
    models = {m.architecture: m for m in search.run(progress=False, max_models=2)}
    assert models[bad].status == "failed" and models[bad].attempts == 1
    assert "RuntimeError: boom" in models[bad].reason and models[bad].reward == 0.1


def test_exhausted_space_stops_with_a_clear_error(tmp_path):
    config = _config(schedule="1.0:3,0.0:200", max_repeats=50)
    search = Search.create(config, tmp_path / "x", backend=InlineBackend(reward=FakeReward()))
    with pytest.raises(ConfigError, match="exhausted"):
        search.run(progress=False)
    assert search.done >= 3  # what was recorded stays recorded
    assert SearchStore.open(tmp_path / "x").count() == search.done


def test_store_errors_name_the_path(tmp_path):
    with pytest.raises(CheckpointError, match="no search store"):
        SearchStore.open(tmp_path / "missing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "search.db").write_bytes(b"not a database at all" * 10)
    with pytest.raises(CheckpointError, match=r"search\.db"):
        SearchStore.open(tmp_path / "bad")
    dup = _search(tmp_path, "dup")
    dup.run(progress=False, max_models=1)
    dup.close()
    with pytest.raises(ConfigError, match="already exists"):
        _search(tmp_path, "dup")


def test_store_is_readable_while_written_and_rows_are_complete(tmp_path):
    search = _search(tmp_path)
    search.run(progress=False, max_models=3)
    db = sqlite3.connect(tmp_path / "run" / "search.db")
    rows = db.execute("SELECT architecture, reward, status, epsilon, worker FROM models").fetchall()
    assert len(rows) == 3 and all(r[2] == "ok" and r[4] for r in rows)
    config = json.loads(db.execute("SELECT value FROM meta WHERE key='config'").fetchone()[0])
    assert config["schedule"] == "1.0:12,0.5:8,0.1:8"
    run = json.loads(db.execute("SELECT value FROM meta WHERE key='run'").fetchone()[0])
    assert "torch" in run and "device_name" in run


def test_bad_search_config_is_a_config_error():
    with pytest.raises(ConfigError, match="schedule"):
        SearchConfig(schedule="soon")
    with pytest.raises(ConfigError, match="workers"):
        SearchConfig(workers=0)
    with pytest.raises(ConfigError, match="width divisor"):
        SearchConfig(width_divisor=0).search_space()


# ------------------------------------------------------------------ worker processes
@pytest.mark.slow
def test_process_backend_evaluates_and_survives_a_dead_worker(shared_data_root):
    spec = RewardSpec(name="real", dataset="digits", epochs=1)
    backend = ProcessBackend(spec, workers=2, threads=1)
    try:
        archs = ["[C(16,3,1), SM(10)]", "[C(32,1,1), P(2,2), SM(10)]"]
        for arch in archs:
            backend.submit(arch)
        got = []
        while backend.in_flight():
            got += backend.wait()
        assert {o.architecture for o in got} == set(archs)
        assert all(o.kind == "ok" and 0 <= o.result.reward <= 1 for o in got)
        assert len({o.worker for o in got}) >= 1
    finally:
        backend.close()
    # a worker killed while it starts (loading torch, the data and the reward takes seconds)
    backend = ProcessBackend(spec, workers=1, threads=1)
    try:
        backend.submit(archs[1])
        deadline = time.monotonic() + 30
        while not backend._pool._processes and time.monotonic() < deadline:
            time.sleep(0.01)
        for pid in list(backend._pool._processes):
            os.kill(pid, signal.SIGKILL)
        (dead,) = backend.wait()
        assert dead.kind == "died" and dead.architecture == archs[1]
        backend.submit(archs[0])  # a fresh pool takes over
        (again,) = backend.wait()
        assert again.kind == "ok"
    finally:
        backend.close()


def _final_store(run):
    store = SearchStore.open(run)
    rows = [(m.id, m.architecture, m.reward, m.epsilon, m.status, m.attempts)
            for m in store.models()]  # fmt: skip
    state = store.state()
    state.pop("elapsed_s")
    return rows, state, store.pending()


@pytest.mark.slow
def test_repeated_kill_9_loses_nothing_and_evaluates_nothing_twice(tmp_path, shared_data_root):
    """A real `metaqnn search` process killed with SIGKILL at random moments, three times,
    resumed each time, ends with the same store (models, Q-table, replay memory, RNG) as an
    uninterrupted run with the same seed, every architecture recorded exactly once."""
    base = [sys.executable, "-m", "metaqnn", "search", "--dataset", "digits", "--reward",
            "real", "--epochs", "1", "--schedule", "1.0:10,0.3:10", "--replay", "10",
            "--no-progress"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*base, "--logdir", str(tmp_path / "straight")], check=True, env=env,
                   capture_output=True)  # fmt: skip
    run = tmp_path / "killed"
    db = run / "search.db"
    rng = np.random.default_rng(7)
    counts = []
    for attempt in range(3):
        argv = (
            [*base, "--logdir", str(run)]
            if attempt == 0
            else [sys.executable, "-m", "metaqnn", "search", "--resume", str(run), "--no-progress"]
        )
        log = tmp_path / f"attempt{attempt}.log"
        with log.open("w") as sink:
            proc = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT)
        start_count = counts[-1] if counts else 0
        deadline = time.monotonic() + 120
        wait_for = 1 + int(rng.integers(3))  # kill after 1-3 more models ...
        extra_delay = float(rng.uniform(0, 0.3))  # ... and a random moment after that
        n = 0
        while time.monotonic() < deadline and proc.poll() is None:
            try:  # read only: polling must never create the file before the search does
                with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as c:
                    n = c.execute("SELECT COUNT(*) FROM models").fetchone()[0]
            except sqlite3.Error:
                n = 0
            if n >= start_count + wait_for:
                time.sleep(extra_delay)
                break
            time.sleep(0.02)
        ended = proc.poll()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if ended is not None:  # it ended on its own (a crash): say why, with its output
            pytest.fail(f"attempt {attempt} ended with {ended} at {n} models:\n"
                        f"{log.read_text()[-3000:]}")  # fmt: skip
        counts.append(SearchStore.open(run).count())
    assert counts == sorted(counts) and counts[-1] < 20, counts  # progress, not yet finished
    subprocess.run([sys.executable, "-m", "metaqnn", "search", "--resume", str(run),
                    "--no-progress"], check=True, env=env, capture_output=True)  # fmt: skip
    rows, state, pending = _final_store(run)
    straight_rows, straight_state, _ = _final_store(tmp_path / "straight")
    assert len(rows) == 20 == len({r[1] for r in rows}) and pending == []
    assert rows == straight_rows
    assert state == straight_state


def test_outcomes_and_specs_cross_process_boundaries():
    """What workers receive and send back survives pickling (spawned processes, Ray)."""
    import pickle

    result = FakeReward().evaluate("[SM(10)]")
    o = Outcome("[SM(10)]", "ok", result, "", "host:1")
    back = pickle.loads(pickle.dumps(o))
    assert back == o and back.result.reward == result.reward
    spec = RewardSpec(name="gtn", gtn_checkpoint="runs/x")
    assert pickle.loads(pickle.dumps(spec)) == spec


@pytest.mark.slow
def test_ray_backend_runs_a_search(tmp_path, shared_data_root):
    """The optional Ray backend (skipped unless `ray` is installed: pip install ray)."""
    ray = pytest.importorskip("ray")
    config = SearchConfig(reward=RewardSpec(name="real", dataset="digits", epochs=1),
                          schedule="1.0:4", replay=5, workers=2, backend="ray")  # fmt: skip
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        search = Search.create(config, tmp_path / "ray")
        models = search.run(progress=False)
        search.close()
    finally:
        ray.shutdown()
    assert len(models) == 4 == len({m.architecture for m in models})
    assert all(m.status == "ok" and ":" in m.worker for m in models)


def test_resume_with_another_worker_count_picks_the_backend(tmp_path):
    first = _search(tmp_path)
    first.run(progress=False, max_models=2)
    first.close()
    fake = InlineBackend(reward=FakeReward())
    one = Search.resume(tmp_path / "run", backend=fake)
    assert one.config.workers == 1
    one.close()
    more = Search.resume(tmp_path / "run", workers=2, backend=fake)
    assert (more.config.workers, more.config.backend) == (2, "process")
    more.close()
    with pytest.raises(ConfigError, match="workers"):
        Search.resume(tmp_path / "run", workers=0, backend=fake)
