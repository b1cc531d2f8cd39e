"""The search's machinery: a failure of it is never an architecture's result, worker
processes end with their parent, and Ctrl-C with workers ends in one line."""

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

import pytest

from metaqnn.errors import DatasetNotFoundError
from metaqnn.rewards.result import RewardResult
from metaqnn.rewards.spec import RewardSpec
from metaqnn.search.failures import MAX_PARKED_IN_A_ROW, MachineryError
from metaqnn.search.loop import Search, SearchConfig
from metaqnn.search.store import SearchStore
from metaqnn.search.workers import InlineBackend, Outcome, _run


class _Reward:
    """A deterministic reward; raises ``fail[arch]`` (an exception) for the listed ones."""

    def __init__(self, fail=None):
        self.calls: Counter[str] = Counter()
        self.fail = fail or {}

    def evaluate(self, arch):
        text = str(arch)
        self.calls[text] += 1
        if text in self.fail:
            raise self.fail[text]
        value = (zlib.crc32(text.encode()) % 1000) / 1000
        return RewardResult(text, value, "ok", "", value, None, 10, 20, 1, 0, 0.01)


class _DyingBackend(InlineBackend):
    """In-process evaluation, except that the 'worker process dies' on the doomed ones."""

    def __init__(self, reward, doomed):
        super().__init__(reward=reward)
        self.doomed = set(doomed)

    def wait(self):
        if self._queue and self._queue[0] in self.doomed:
            arch = self._queue.pop(0)
            return [Outcome(arch, "died", None, "worker process died: killed", "?")]
        return super().wait()


def _config(schedule="1.0:12,0.5:8,0.1:8"):
    return SearchConfig(reward=RewardSpec(name="real", dataset="digits"), schedule=schedule,
                        replay=20)  # fmt: skip


def _sequence(tmp_path, n=28):
    probe = Search.create(_config(), tmp_path / "probe", backend=InlineBackend(reward=_Reward()))
    probe.run(progress=False)
    probe.close()
    return [m.architecture for m in probe.models][:n]


# ------------------------------------------------------------------ failures of the machinery
def test_a_dead_worker_is_not_the_architectures_result_and_resume_evaluates_it(tmp_path):
    doomed = _sequence(tmp_path)[4]
    search = Search.create(_config(), tmp_path / "run",
                           backend=_DyingBackend(_Reward(), [doomed]))  # fmt: skip
    search.run(progress=False)
    search.close()
    store = SearchStore.open(tmp_path / "run")
    assert doomed not in {m.architecture for m in store.models()}  # no reward stored for it
    assert store.count() == 27 and [(p.architecture, p.attempts) for p in store.pending()] == [
        (doomed, 0)
    ]
    assert doomed not in {a for a, _ in search.replay_memory.entries}  # nothing learnt from it
    store.close()

    reward = _Reward()
    resumed = Search.resume(tmp_path / "run", backend=InlineBackend(reward=reward))
    assert doomed in resumed.in_flight
    resumed.run(progress=False)
    resumed.close()
    assert reward.calls == {doomed: 1}  # evaluated again, and nothing else
    final = SearchStore.open(tmp_path / "run")
    record = final.lookup(doomed)
    assert record.status == "ok" and record.attempts == 1 and final.count() == 28
    assert final.pending() == []


def test_a_dead_worker_recorded_as_a_result_by_an_earlier_version_is_evaluated_again(tmp_path):
    first = Search.create(_config(), tmp_path / "run", backend=InlineBackend(reward=_Reward()))
    first.run(progress=False, max_models=3)
    first.close()
    store = SearchStore.open(tmp_path / "run")
    # what the earlier version stored when a worker died twice
    doomed = _sequence(tmp_path)[3]
    reason = "died: worker process died: A process in the process pool was terminated abruptly"
    store.record_result(RewardResult.failed(doomed, reason, 0.1), epsilon=1.0, worker="?",
                        attempts=2, state={**store.state(), "samples": 4})  # fmt: skip
    store.close()

    reward = _Reward()
    resumed = Search.resume(tmp_path / "run", backend=InlineBackend(reward=reward))
    assert resumed.done == 3 and doomed in resumed.in_flight
    resumed.run(progress=False, max_models=1)
    resumed.close()
    assert reward.calls == {doomed: 1}
    record = SearchStore.open(tmp_path / "run").lookup(doomed)
    assert record.status == "ok" and record.reason == ""


def test_machinery_errors_in_the_evaluation_are_told_apart_from_the_models():
    arch = "[C(16,3,1), SM(10)]"
    data = _Reward(fail={arch: DatasetNotFoundError("digits: no files under /nowhere")})
    disk = _Reward(fail={arch: OSError(5, "Input/output error")})
    model = _Reward(fail={arch: RuntimeError("mat1 and mat2 shapes cannot be multiplied")})
    assert _run(data, arch).kind == "machinery" and _run(disk, arch).kind == "machinery"
    assert _run(model, arch).kind == "error"


def test_the_machinery_failing_again_and_again_stops_the_search(tmp_path):
    class Broken(_Reward):
        def evaluate(self, arch):
            self.calls[str(arch)] += 1
            raise DatasetNotFoundError("digits: the data folder went away")

    reward = Broken()
    search = Search.create(_config(), tmp_path / "run", backend=InlineBackend(reward=reward))
    with pytest.raises(MachineryError, match=r"3 architectures in a row .*went away.*--resume"):
        search.run(progress=False)
    search.close()
    assert len(reward.calls) == MAX_PARKED_IN_A_ROW and set(reward.calls.values()) == {2}
    store = SearchStore.open(tmp_path / "run")
    assert store.count() == 0 and {p.architecture for p in store.pending()} == set(reward.calls)
    store.close()


def test_a_models_own_failure_is_still_its_result(tmp_path):
    bad = _sequence(tmp_path, 1)[0]
    reward = _Reward(fail={bad: RuntimeError("boom")})
    search = Search.create(_config(), tmp_path / "run", backend=InlineBackend(reward=reward))
    models = {m.architecture: m for m in search.run(progress=False, max_models=2)}
    search.close()
    assert models[bad].status == "failed" and models[bad].reward == pytest.approx(0.1)


# ------------------------------------------------------------------ worker processes
def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended (nobody reaped it yet)


@contextlib.contextmanager
def _sigint_as_in_a_terminal():
    """A process started inside gets SIGINT at its default and unblocked, as a terminal's
    foreground job does, whatever this pytest process inherited: a job started in the
    background by a script ignores SIGINT, and so would the search started from it (Python
    keeps an inherited SIG_IGN, as a command-line tool should)."""
    handler = signal.signal(signal.SIGINT, signal.SIG_DFL)
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGINT, handler)


def _start_search(tmp_path, data_root, **popen):
    argv = [sys.executable, "-m", "metaqnn", "search", "--dataset", "digits", "--data-root",
            str(data_root), "--reward", "real", "--epochs", "1", "--schedule", "1.0:40",
            "--replay", "5", "--workers", "2", "--no-progress", "--logdir",
            str(tmp_path / "run")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with _sigint_as_in_a_terminal():
        return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, **popen)  # fmt: skip


SQL_COUNT = "SELECT COUNT(*) FROM models"


def _wait_for(proc, *, workers: int, models: int, db: Path, timeout: float = 120) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        kids = [
            p
            for p in _children(proc.pid)
            if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")
        ]
        count = 0
        if models:
            with contextlib.suppress(sqlite3.Error):  # read only: never create the file
                uri = f"{db.as_uri()}?mode=ro"
                count = sqlite3.connect(uri, uri=True).execute(SQL_COUNT).fetchone()[0]
        if len(kids) >= workers and count >= models:
            return kids
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"no {workers} workers and {models} models in time: {proc.communicate()}")


def _gone(pids: list[int], within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_a_killed_parent(tmp_path, shared_data_root):
    proc = _start_search(tmp_path, shared_data_root)
    try:
        workers = _wait_for(proc, workers=2, models=1, db=tmp_path / "run" / "search.db")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert _gone(workers, within=5), [p for p in workers if _alive(p)]
    finally:
        for pid in _children(proc.pid) + (workers if "workers" in locals() else []):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("moment", ["starting", "evaluating"])
def test_ctrl_c_with_workers_is_one_line(tmp_path, shared_data_root, moment):
    """Ctrl-C in a terminal signals the whole process group: the workers (while they start,
    or while they train) say nothing, the parent says one line and stops them."""
    proc = _start_search(tmp_path, shared_data_root, start_new_session=True)
    try:
        db = tmp_path / "run" / "search.db"
        workers = _wait_for(proc, workers=2, models=int(moment == "evaluating"), db=db)
        if moment == "starting":
            time.sleep(1.5)  # the workers are importing torch and building the reward
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, (proc.returncode, err)
        assert err.strip().splitlines() == ["metaqnn: interrupted"], err
        assert _gone(workers, within=5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
