"""``metaqnn lopt train|eval`` on the embedded digits data, with tiny budgets."""

from __future__ import annotations

import json

import pytest
import torch

from metaqnn.cli.main import COMMANDS
from metaqnn.learned_optimizer.checkpoints import load_lopt_checkpoint
from tests.metaqnn.cli.test_cli import _one_line_error, _run

TINY = [
    *("--channels", "2,2,2,2", "--pairs", "1", "--truncation", "2", "--inner-steps", "3"),
    *("--batch-size", "8", "--val-batch", "16", "--no-progress"),
]


def test_lopt_is_a_command():
    assert "lopt" in COMMANDS


@pytest.mark.slow
def test_lopt_train_resume_and_eval(capsys, tmp_path):
    run = tmp_path / "lopt"
    code, out, _ = _run(capsys, "lopt", "train", "--outer-steps", "2", "--logdir", str(run),
                        "--outer-lr", "0.3", *TINY)  # fmt: skip
    assert code == 0, out
    assert "2/2 ES steps" in out
    state = load_lopt_checkpoint(run)
    assert state["step"] == 2 and state["extra"]["channels"] == [2, 2, 2, 2]
    assert state["es_config"]["theta_init"] == "adam" and state["inner"]["step"] == 3
    assert (run / "tb").is_dir()

    code, out, _ = _run(capsys, "lopt", "train", "--resume", str(run), "--outer-steps", "3",
                        "--no-progress")  # fmt: skip
    assert code == 0 and "3/3 ES steps" in out, out
    resumed = load_lopt_checkpoint(run)
    assert [r["meta_loss"] for r in resumed["history"][:2]] == [
        r["meta_loss"] for r in state["history"]
    ]
    assert not torch.equal(resumed["theta"]["w1"], state["theta"]["w1"])

    out_dir = tmp_path / "eval"
    code, out, _ = _run(capsys, "lopt", "eval", str(run), "--seeds", "1", "--tune-seeds", "1",
                        "--adam-lrs", "0.01,0.1", "--test-noise", "0,0.2",
                        "--corruptions", "contrast", "--out", str(out_dir))  # fmt: skip
    assert code == 0, out
    assert "learned optimizer, clean training" in out and "Adam (tuned lr), noisy training" in out
    report = json.loads((out_dir / "report.json").read_text())
    assert set(report["rows"]) == {"learned", "adam_clean", "adam_noisy"}
    assert report["adam_lr"]["adam_clean"] in (0.01, 0.1)
    row = report["rows"]["learned"][0]
    assert row["seed"] == 0 and 0.0 <= row["test_acc@0.2"] <= 1.0
    assert "corruption/contrast" in row and row["val_noisy_loss"] > 0
    assert "val_noisy_curve_mean" in row

    initial = tmp_path / "initial"
    code, out, _ = _run(capsys, "lopt", "eval", str(run), "--initial", "--seeds", "1",
                        "--tune-seeds", "1", "--adam-lrs", "0.01", "--test-noise", "0",
                        "--corruptions", "contrast", "--out", str(initial))  # fmt: skip
    assert code == 0, out
    before = json.loads((initial / "report.json").read_text())["rows"]["learned"]
    assert before[0]["val_noisy_loss"] != row["val_noisy_loss"]  # the ES steps changed theta


@pytest.mark.slow
def test_lopt_train_on_the_adam_base_with_burn_in(capsys, tmp_path):
    run = tmp_path / "adam-base"
    code, out, _ = _run(capsys, "lopt", "train", "--outer-steps", "2", "--logdir", str(run),
                        "--base", "adam", "--base-lr", "0.02", "--exp-mult", "0.1",
                        "--theta-init", "zero_output", "--burn-in", "1", *TINY)  # fmt: skip
    assert code == 0, out
    state = load_lopt_checkpoint(run)
    assert state["lopt_config"]["base"] == "adam" and state["lopt_config"]["base_lr"] == 0.02
    assert state["es_config"]["burn_in"] == 1 and state["es_config"]["theta_init"] == "zero_output"
    assert [r["inner_step"] for r in state["history"]] == [3, 3]  # burn-in 1, then 2 scored


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--noise", "-1"], "-1"),
        (["--channels", "a,b"], "'a,b'"),
        (["--channels", "2,2", "--strides", "1"], "(2, 2)"),
        (["--sigma", "0"], "--sigma 0.0"),
        (["--pairs", "0"], "--pairs 0"),
        (["--burn-in", "3"], "burn_in=3"),
        (["--base", "adam", "--base-lr", "0"], "--base-lr 0.0"),
    ],
)
def test_bad_train_options_are_one_line(capsys, tmp_path, argv, fragment):
    _one_line_error(capsys, "lopt", "train", "--outer-steps", "1", "--logdir",
                    str(tmp_path / "x"), *TINY, *argv, contains=(fragment,))  # fmt: skip


def test_bad_checkpoints_are_one_line(capsys, tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"nope")
    _one_line_error(capsys, "lopt", "eval", str(tmp_path), contains=("checkpoint.pt",))
    _one_line_error(capsys, "lopt", "train", "--resume", str(tmp_path / "missing"),
                    contains=("no such",))  # fmt: skip
