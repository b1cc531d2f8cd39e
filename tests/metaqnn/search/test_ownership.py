"""One owner per run folder and a store that survives: a second writer is refused while the
first lives (and never after it died), ``search.db`` alone is a current copy of the run, a
killed creation blocks nothing, and a creation that fails leaves no folder behind."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys

import pytest

from envs.layers import Architecture
from metaqnn.cli import main
from metaqnn.runlock import LOCK_NAME, RunInUseError, RunLock
from metaqnn.search.loop import Search, SearchConfig
from metaqnn.search.store import DB_NAME, SearchStore

CONFIG = SearchConfig(schedule="1.0:6,0.5:4", replay=5)


def depth_reward(arch: Architecture) -> float:
    return 1.0 / len(arch.layers)


def test_a_second_writer_is_refused_while_the_first_lives(tmp_path):
    run = tmp_path / "run"
    first = Search.create(CONFIG, run, reward=depth_reward)
    first.run(max_models=3, progress=False)
    with pytest.raises(RunInUseError, match=rf"{run.name} is in use by process \d+"):
        Search.resume(run, reward=depth_reward)
    with pytest.raises(RunInUseError):
        Search.create(CONFIG, run, reward=depth_reward)
    # the first finishes with exactly its schedule
    assert len(first.run(progress=False)) == 10
    first.close()
    again = Search.resume(run, reward=depth_reward)
    assert again.done == 10
    again.close()


def _holder(run) -> subprocess.Popen:
    code = (
        "import sys, time; from metaqnn.runlock import RunLock; "
        "lock = RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(120)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(run)], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_the_cli_refuses_a_live_owner_in_one_line_and_ignores_a_dead_one(capsys, tmp_path):
    run = tmp_path / "run"
    argv = ["search", "--dataset", "digits", "--reward", "real", "--epochs", "1",
            "--schedule", "1.0:1", "--logdir", str(run), "--no-progress"]  # fmt: skip
    holder = _holder(run)
    try:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"is in use by process {holder.pid}" in err[0]
        assert not (run / DB_NAME).exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the owner was killed: its lock file stays, and blocks nothing
    assert (run / LOCK_NAME).exists()
    assert main(argv) == 0, capsys.readouterr().err
    assert SearchStore.open(run).count() == 1


def test_search_db_alone_is_a_current_copy(tmp_path):
    run = tmp_path / "run"
    search = Search.create(CONFIG, run, reward=depth_reward)
    search.run(max_models=4, progress=False)
    # as after a kill -9 whose -wal file is then lost: copy the database file alone
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copyfile(run / DB_NAME, copy / DB_NAME)
    store = SearchStore.open(copy)
    assert store.count() == 4 and store.state() is not None
    store.close()
    search.close()


def test_a_killed_creation_blocks_nothing(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / f".{DB_NAME}.12345.tmp").write_bytes(b"half a database")
    (run / LOCK_NAME).write_text("12345\n")
    search = Search.create(CONFIG, run, reward=depth_reward)
    assert len(search.run(progress=False)) == 10
    search.close()
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == [LOCK_NAME]


def test_a_creation_that_fails_leaves_no_folder(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(Exception, match="cannot be called"):
        Search.create(CONFIG, run, reward=lambda: 1.0)
    assert not run.exists()


def test_the_lock_is_exclusive_within_a_process_too(tmp_path):
    with RunLock(tmp_path), pytest.raises(RunInUseError):
        RunLock(tmp_path).acquire()
    with RunLock(tmp_path) as lock:  # released on exit
        assert lock.held
    assert not lock.held


@pytest.mark.slow
def test_a_broken_setup_with_workers_is_one_line_and_leaves_no_run(capsys, tmp_path):
    run = tmp_path / "run"
    argv = ["search", "--dataset", "mnist", "--data-root", str(tmp_path / "nonexistent"),
            "--reward", "real", "--workers", "2", "--schedule", "1.0:2", "--logdir", str(run),
            "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nonexistent" in err[0], err
    assert not run.exists()


@pytest.mark.slow
def test_kill_9_then_losing_the_wal_loses_at_most_the_result_in_flight(tmp_path, shared_data_root):
    """A real search killed with SIGKILL, its ``-wal`` and ``-shm`` files then deleted (a copy
    of ``search.db`` alone): every result recorded before the kill is still there but the one
    in flight, and the resumed run ends with every architecture exactly once."""
    import os
    import sqlite3
    import time

    base = [sys.executable, "-m", "metaqnn", "search", "--dataset", "digits", "--reward",
            "real", "--epochs", "3", "--schedule", "1.0:12", "--no-progress"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = tmp_path / "run"
    db = run / DB_NAME
    proc = subprocess.Popen([*base, "--logdir", str(run)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    seen, deadline = 0, time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None and seen < 3:
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)  # never creates the file
            try:
                seen = con.execute("SELECT COUNT(*) FROM models").fetchone()[0]
            finally:
                con.close()
        except sqlite3.Error:
            seen = 0
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert seen >= 3, "the search recorded too few models before the deadline"
    for suffix in ("-wal", "-shm"):
        (run / f"{DB_NAME}{suffix}").unlink(missing_ok=True)
    kept = SearchStore.open(run).count()
    assert kept >= seen - 1, (kept, seen)
    done = subprocess.run([sys.executable, "-m", "metaqnn", "search", "--resume", str(run),
                           "--no-progress"], env=env, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    store = SearchStore.open(run)
    archs = [m.architecture for m in store.models()]
    assert len(archs) == 12 == len(set(archs)) and store.pending() == []
