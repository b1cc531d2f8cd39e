"""``metaqnn design`` end to end on digits: the budget kept, the baselines in the table, the
winner chosen by cross-validation (the digits preset), its TorchScript export, a resume that
redoes nothing, and the one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from metaqnn.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(capsys, *argv) -> str:
    code, _, err = _run(capsys, *argv)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("metaqnn: error: "), err
    return lines[0]


@pytest.mark.slow
def test_a_short_design_on_digits_keeps_its_budget_and_resumes(capsys, tmp_path):
    run = tmp_path / "design"
    budget = 90
    code, out, err = _run(capsys, "design", "--dataset", "digits", "--budget", f"{budget}s",
                          "--logdir", str(run), "--no-progress", "--finalists", "2")  # fmt: skip
    assert code == 0, err
    assert "budget 1m30s:" in out and "final training" in out
    summary = json.loads((run / "summary.json").read_text())
    # the budget is kept to within 10 %
    assert summary["wall_s"] <= 1.1 * budget, summary["spent_s"]
    finals = summary["finals"]
    assert [f["kind"] for f in finals].count("baseline") == 2
    assert [f["kind"] for f in finals].count("design") == 2
    assert len({f["epochs"] for f in finals}) == 1  # one recipe for all
    designs = [f for f in finals if f["kind"] == "design"]
    winner = max(designs, key=lambda f: f["val_accuracy"])
    assert summary["winner"] == winner["architecture"]  # chosen by cross-validation, not test
    assert summary["folds"] == 5 and all(f["folds"] == 5 for f in finals)  # digits' preset
    assert summary["finalist_pick"] == "heads"
    assert summary["space"] == "digits"  # the dataset's own space
    assert summary["test_error_pct"] == pytest.approx(100 * (1 - winner["test_accuracy"]))
    # the winner against the best baseline, image by image, on the 297 test images
    base = next(f for f in finals if f["architecture"] == summary["hand_baseline"])
    assert len(winner["test_wrong"]) == round(297 * (1 - winner["test_accuracy"]))
    paired = summary["paired_test"]
    assert paired["only_a"] + paired["both"] == len(winner["test_wrong"])
    assert paired["only_b"] + paired["both"] == len(base["test_wrong"])
    report = (run / "report.md").read_text()
    assert "5-fold cv acc %" in report and "exact McNemar p =" in report
    assert "classifier heads in turn" in report  # digits' finalist pick
    assert "search ran in the `digits` space" in report
    assert "hand: conv-conv-pool-fc" in report and "hand: two wide convs" in report
    assert "(winner)" in report
    for name in ("winner.pt", "winner.ts.pt", "anytime.png", "reward_vs_final.png"):
        assert (run / name).is_file(), name
    # the winner's checkpoint records the split its validation images came from (seed 0)
    from metaqnn.core.checkpoint import load_checkpoint
    from metaqnn.core.data import get_spec

    want = {"seed": 0, "val_size": get_spec("digits").default_val_size}
    assert load_checkpoint(run / "winner.pt").split == want
    # the export loads in plain torch, without this package
    code = (
        "import sys, torch; m = torch.jit.load(sys.argv[1]); "
        "y = m(torch.rand(2, 1, 8, 8)); print(tuple(y.shape), 'metaqnn' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-I", "-c", code, str(run / "winner.ts.pt")],
                          capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["(2,", "10)", "False"]
    # a second run resumes and redoes nothing
    spent = summary["wall_s"]
    code, out, err = _run(capsys, "design", "--resume", str(run), "--no-progress")
    assert code == 0, err
    assert "resuming" in out
    again = json.loads((run / "summary.json").read_text())
    assert again["finals"] == finals and again["wall_s"] == pytest.approx(spent, abs=1.0)


def test_a_budget_too_small_for_one_final_training_is_refused_before_any_work(capsys, tmp_path):
    run = tmp_path / "design"
    line = _one_line_error(capsys, "design", "--budget", "1s", "--logdir", str(run))
    assert "--budget" in line and "final training" in line
    assert not run.exists()


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--budget", "2 hours"], "--budget"),
        (["--budget", "10m", "--recipe", "magic"], "unknown recipe 'magic'"),
        (["--budget", "10m", "--dataset", "svhn"], "no preset for dataset 'svhn'"),
        (["--budget", "10m", "--finalists", "0"], "--finalists"),
        (["--budget", "10m", "--shares", "0.5,0.5,0.5"], "shares"),
        ([], "--budget is required"),
        (["--budget", "10m", "--agent", "greedy"], "unknown search agent 'greedy'"),
        (["--budget", "10m", "--reward", "flops"], "unknown design reward 'flops'"),
        (["--budget", "10m", "--real-epochs", "0"], "--real-epochs 0"),
        (["--budget", "10m", "--finalist-pick", "best"], "unknown finalist pick 'best'"),
    ],
)
def test_bad_design_options_are_one_line_errors(capsys, tmp_path, argv, words):
    run = tmp_path / "design"
    line = _one_line_error(capsys, "design", "--logdir", str(run), *argv)
    assert words in line
    assert not run.exists()


def test_a_teacher_for_another_dataset_is_refused(capsys, tmp_path):
    from tests.metaqnn.cli.test_cli import GTN_TINY

    teacher = tmp_path / "gtn"
    code, _, err = _run(capsys, "gtn", "train", "--dataset", "digits", *GTN_TINY,
                        "--outer-steps", "2", "--logdir", str(teacher))  # fmt: skip
    assert code == 0, err
    argv = ["--dataset", "mnist", "--budget", "1h", "--gtn-checkpoint", str(teacher)]
    line = _one_line_error(capsys, "design", *argv, "--logdir", str(tmp_path / "d"))
    assert "teaches 'digits'" in line and "'mnist'" in line


def test_resume_of_a_folder_without_a_design_is_one_line(capsys, tmp_path):
    line = _one_line_error(capsys, "design", "--resume", str(tmp_path))
    assert "holds no design run" in line


@pytest.mark.slow
def test_random_search_with_the_real_reward_and_no_baselines(capsys, tmp_path):
    run = tmp_path / "design"
    code, _, err = _run(capsys, "design", "--dataset", "digits", "--budget", "40s",
                          "--logdir", str(run), "--no-progress", "--finalists", "1",
                          "--agent", "random", "--reward", "real", "--no-baselines")  # fmt: skip
    assert code == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["agent"], summary["reward"]) == ("random", "real")
    assert [f["kind"] for f in summary["finals"]] == ["design"]
    assert summary["hand_baseline_test_error_pct"] is None
    assert not (run / "teacher").exists()
    state = json.loads((run / "design.json").read_text())
    schedule = state["search"]["schedule"]
    assert schedule.startswith("1.0:") and "," not in schedule  # epsilon 1 throughout


@pytest.mark.slow
def test_a_kill_9_in_the_search_keeps_the_time_spent_and_resumes(tmp_path):
    import os
    import signal
    import time

    run = tmp_path / "design"
    budget = 90
    argv = [sys.executable, "-m", "metaqnn", "design", "--dataset", "digits", "--budget",
            f"{budget}s", "--logdir", str(run), "--no-progress", "--finalists", "2"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    timeline = run / "timeline.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if timeline.is_file() and len(timeline.read_text().splitlines()) >= 5:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.stderr.read().decode()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = json.loads((run / "design.json").read_text())
    assert state["phases"].get("search") != "done"
    assert state["spent"]["search"] > 0  # saved after each model, not only at a clean exit
    done = subprocess.run([sys.executable, "-m", "metaqnn", "design", "--resume", str(run),
                           "--no-progress"], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["wall_s"] <= 1.1 * budget, summary["spent_s"]
