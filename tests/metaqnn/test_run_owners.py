"""Every resumable run has one owner: a GTN teacher and a design run refuse a second process
while the first lives, and ``gtn train`` never overwrites an existing run without
``--resume``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from gtn.meta import checkpoint_file, load_meta_checkpoint
from metaqnn.cli import main
from tests.metaqnn.cli.test_cli import GTN_TINY


def _holder(run) -> subprocess.Popen:
    code = (
        "import sys, time; from metaqnn.runlock import RunLock; "
        "lock = RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(120)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(run)], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "held"
    return proc


def _one_line(capsys, *argv) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_a_teacher_has_one_owner_and_is_never_overwritten(capsys, tmp_path):
    run = tmp_path / "gtn"
    assert main(["gtn", "train", "--outer-steps", "2", "--logdir", str(run), *GTN_TINY]) == 0
    capsys.readouterr()
    line = _one_line(capsys, "gtn", "train", "--outer-steps", "1", "--logdir", str(run),
                     *GTN_TINY)  # fmt: skip
    assert "already holds a teacher" in line and "--resume" in line
    assert load_meta_checkpoint(checkpoint_file(run))["step"] == 2  # untouched
    holder = _holder(run)
    try:
        line = _one_line(capsys, "gtn", "train", "--resume", str(run), "--outer-steps", "3")
        assert f"in use by process {holder.pid}" in line
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert main(["gtn", "train", "--resume", str(run), "--outer-steps", "3", "--no-progress"]) == 0
    assert load_meta_checkpoint(checkpoint_file(run))["step"] == 3


def test_a_design_run_has_one_owner(capsys, tmp_path):
    run = tmp_path / "design"
    run.mkdir()
    config = {"dataset": "digits", "budget_s": 60.0, "logdir": str(run)}
    (run / "design.json").write_text(json.dumps({"config": config, "spent": {}, "phases": {},
                                                 "finals": {}}))  # fmt: skip
    holder = _holder(run)
    try:
        line = _one_line(capsys, "design", "--resume", str(run))
        assert f"in use by process {holder.pid}" in line
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def test_a_learned_optimizer_run_has_one_owner_and_is_never_overwritten(capsys, tmp_path):
    from metaqnn.cli.lopt import load_state
    from tests.metaqnn.cli.test_cli_lopt import TINY

    run = tmp_path / "lopt"
    assert main(["lopt", "train", "--outer-steps", "1", "--logdir", str(run), *TINY]) == 0
    capsys.readouterr()
    line = _one_line(capsys, "lopt", "train", "--outer-steps", "2", "--logdir", str(run), *TINY)
    assert "already holds a learned optimizer" in line and "--resume" in line
    holder = _holder(run)
    try:
        line = _one_line(capsys, "lopt", "train", "--resume", str(run), "--outer-steps", "2")
        assert f"in use by process {holder.pid}" in line
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert main(["lopt", "train", "--resume", str(run), "--outer-steps", "2",
                 "--no-progress"]) == 0  # fmt: skip
    assert load_state(str(run))["step"] == 2


def test_an_experiment_scratch_folder_has_one_owner(capsys, tmp_path):
    from experiments.__main__ import cli
    from experiments.harness import CONFIG_DIR, config_digest, load_config
    from experiments.learner_types import Config

    out, work = tmp_path / "out", tmp_path / "work"
    argv = ["learner_types", "--quick", "--out", str(out), "--work", str(work)]
    config = load_config(Config, CONFIG_DIR / "learner_types.toml", quick=True)
    scratch = work / config_digest(config)
    holder = _holder(scratch)
    try:
        assert cli(argv) == 2
        assert f"in use by process {holder.pid}" in capsys.readouterr().err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def test_waiting_lock_lets_one_holder_in_at_a_time(tmp_path):
    import threading
    import time

    from metaqnn.runlock import waiting_lock

    events: list[str] = []

    def section(name: str) -> None:
        with waiting_lock(tmp_path / "sub" / "x.lock"):  # the folder is created
            events.append(f"{name} in")
            time.sleep(0.1)
            events.append(f"{name} out")

    threads = [threading.Thread(target=section, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    # never two inside: every "in" is followed by its own "out"
    assert len(events) == 4 and all(
        events[i].split()[0] == events[i + 1].split()[0] and events[i].endswith("in")
        for i in (0, 2)
    )
