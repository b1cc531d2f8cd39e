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
