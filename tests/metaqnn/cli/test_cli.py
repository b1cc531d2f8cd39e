import json
import re
import subprocess
import sys

import pytest

from metaqnn.cli.main import COMMANDS, build_parser, main
from metaqnn.core.checkpoint import load_checkpoint

TARGET = "[C(32,3,1), P(2,2), C(64,3,1), P(2,2), FC(128), SM(10)]"


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(capsys, *argv, contains=()):
    code, _, err = _run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("metaqnn: error: "), err
    for text in contains:
        assert text in lines[0]
    return lines[0]


def test_every_command_has_help():
    parser = build_parser()
    for name in COMMANDS:
        with pytest.raises(SystemExit) as info:
            parser.parse_args([name, "--help"])
        assert info.value.code == 0


def test_validate_ok_prints_shapes(capsys):
    code, out, _ = _run(
        capsys, "validate", "[C(64,3,1), P(2,2), FC(128), SM(10)]", "--space", "digits"
    )
    assert code == 0
    assert "obeys every rule" in out and "64x4x4" in out


def test_malformed_architecture_is_one_line(capsys):
    _one_line_error(capsys, "validate", "[C(64,3,1), P(2,2) FC(128), SM(10)]",
                    contains=("P(2,2) FC(128)", "position 12"))  # fmt: skip


def test_rule_breaking_architecture_names_the_rule(capsys):
    _one_line_error(capsys, "validate", "[C(64,3,1), P(2,2), P(2,2), SM(10)]",
                    contains=("no-pool-after-pool", "layer 2"))  # fmt: skip
    _one_line_error(capsys, "train", "[P(2,2), SM(10)]", "--space", "digits",
                    contains=("no-pool-first",))  # fmt: skip


def test_unknown_dataset_and_preset(capsys):
    _one_line_error(capsys, "train", "[SM(10)]", "--dataset", "imagenet", contains=("imagenet",))
    _one_line_error(capsys, "sample", "--space", "imagenet", contains=("imagenet",))


def test_missing_data_root_names_dataset_and_root(capsys, tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    _one_line_error(capsys, "train", "[SM(10)]", "--dataset", "mnist", "--data-root", str(root),
                    contains=("mnist", str(root), "--download"))  # fmt: skip


def test_corrupt_and_missing_checkpoints(capsys, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    _one_line_error(capsys, "evaluate", "accuracy", str(bad), contains=(str(bad),))
    _one_line_error(capsys, "evaluate", "accuracy", str(tmp_path / "none.pt"),
                    contains=("none.pt", "no such"))  # fmt: skip


def test_bad_option_values(capsys):
    _one_line_error(capsys, "train", "[SM(10)]", "--epochs", "0", contains=("epochs",))
    _one_line_error(capsys, "train", "[SM(10)]", "--dataset", "digits", "--norm", "foo",
                    contains=("foo",))  # fmt: skip
    _one_line_error(capsys, "train", "[SM(3)]", "--dataset", "digits", contains=("SM(3)",))
    _one_line_error(capsys, "train", "[C(8,3,1), P(9,9), SM(10)]", "--dataset", "digits",
                    contains=("P(9,9)", "layer 1"))  # fmt: skip


def test_train_then_evaluate_on_digits(capsys, tmp_path):
    ckpt = tmp_path / "model.pt"
    code, out, _ = _run(capsys, "train", "[C(16,3,1), P(2,2), FC(64), SM(10)]", "--dataset",
                        "digits", "--epochs", "3", "--out", str(ckpt), "--no-progress")  # fmt: skip
    assert code == 0, out
    test_line = next(line for line in out.splitlines() if line.startswith("test"))
    accuracy = float(test_line.split()[2])
    assert accuracy > 0.5
    loaded = load_checkpoint(ckpt)
    assert loaded.metrics["test_accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert loaded.metrics["run"]["device"] == "cpu"
    assert len(loaded.metrics["normalization"]["mean"]) == 1  # what robustness un-normalises with
    code, out, _ = _run(capsys, "evaluate", "accuracy", str(ckpt))
    assert code == 0
    assert f"accuracy {accuracy:.4f}" in out


@pytest.mark.slow
def test_demo_designs_on_digits_beside_the_baselines_then_resumes(capsys, tmp_path):
    root = tmp_path / "demo"
    argv = ["demo", "--logdir", str(root), "--budget", "90s", "--no-progress"]
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    assert "budget 1m30s:" in out and "(winner)" in out
    assert (root / "teacher" / "checkpoint.pt").exists()
    report = (root / "report.md").read_text()
    assert len(re.findall(r"\| hand: ", report)) == 2  # the baseline rows
    assert len(re.findall(r"\| design \d", report)) == 5  # the digits preset's finalists
    assert "5-fold cv acc %" in report  # picked by cross-validation, the preset's
    assert (root / "winner.ts.pt").exists()
    before = (root / "summary.json").read_text()
    code, out, _ = _run(capsys, *argv)  # a second run resumes and redoes nothing
    assert code == 0 and "resuming" in out
    assert json.loads((root / "summary.json").read_text())["finals"] == json.loads(before)["finals"]


def test_sample_is_seeded(capsys):
    _, a, _ = _run(capsys, "sample", "--space", "mnist", "-n", "4", "--seed", "3")
    _, b, _ = _run(capsys, "sample", "--space", "mnist", "-n", "4", "--seed", "3")
    assert a == b and len(a.splitlines()) == 4


def test_space_reports_counts(capsys):
    code, out, _ = _run(capsys, "space", "--space", "digits")
    assert code == 0
    assert "reachable states" in out and "no-pool-after-pool" in out


def test_console_entry_point_exits_non_zero_with_one_line():
    proc = subprocess.run(
        [sys.executable, "-m", "metaqnn", "validate", "[C(64,3,1), X, SM(10)]"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "'X'" in proc.stderr


@pytest.mark.slow
def test_mnist_one_epoch_reaches_97_percent(capsys, tmp_path, shared_data_root):
    """The foundation issue's target: the reference CNN, 1 epoch of MNIST, >= 97% test."""
    code, out, _ = _run(capsys, "train", TARGET, "--dataset", "mnist", "--epochs", "1",
                        "--data-root", str(shared_data_root), "--out", str(tmp_path / "m.pt"),
                        "--no-progress")  # fmt: skip
    assert code == 0, out
    test_line = next(line for line in out.splitlines() if line.startswith("test"))
    assert float(test_line.split()[2]) >= 0.97, out


#: A tiny GTN run's options but its inner batch.
GTN_TINY_ANY_BATCH = [
    *("--inner-steps", "2", "--generator-hidden", "32"),
    *("--noise-dim", "8", "--meta-batch", "32", "--eval-archs", "1", "--no-progress"),
]
GTN_TINY = ["--inner-batch", "16", *GTN_TINY_ANY_BATCH]


def test_gtn_train_resume_sample_eval(capsys, tmp_path):
    run = tmp_path / "gtn"
    code, out, _ = _run(capsys, "gtn", "train", "--outer-steps", "3", "--max-minutes", "0",
                        "--logdir", str(run), *GTN_TINY)  # fmt: skip
    assert code == 0, out
    assert (run / "checkpoint.pt").exists() and (run / "config.json").exists()
    assert "outer step 0/3" in out
    code, out, _ = _run(capsys, "gtn", "train", "--resume", str(run), "--no-progress",
                        "--eval-archs", "0")  # fmt: skip
    assert code == 0 and "outer step 3/3" in out
    code, out, _ = _run(capsys, "gtn", "train", "--resume", str(run), "--outer-steps", "4",
                        "--no-progress", "--eval-archs", "0")  # fmt: skip
    assert code == 0 and "outer step 4/4" in out
    code, out, _ = _run(capsys, "gtn", "sample", str(run), "--out", str(tmp_path / "s.png"))
    assert code == 0 and (tmp_path / "s.png").stat().st_size > 0
    code, out, _ = _run(capsys, "gtn", "eval", str(run), "[C(16,3,1), P(2,2), FC(64), SM(10)]",
                        "--seeds", "1", "--real-lrs", "0.01")  # fmt: skip
    assert code == 0 and "GTN, 2 steps" in out and "real data, Adam lr 0.01" in out


def test_gtn_train_with_the_relative_step_rule(capsys, tmp_path):
    import math

    import torch

    run = tmp_path / "rel"
    code, out, _ = _run(capsys, "gtn", "train", "--outer-steps", "1", "--logdir", str(run),
                        "--inner-rule", "relative", *GTN_TINY)  # fmt: skip
    assert code == 0, out
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["teacher_config"]["inner_rule"] == "relative"
    assert state["teacher_config"]["init_lr"] == 0.03  # the rule's default initial rate
    assert not state["history"][0]["skipped"] and math.isfinite(state["history"][0]["meta_loss"])
    code, out, _ = _run(capsys, "gtn", "eval", str(run), "[C(16,3,1), P(2,2), FC(64), SM(10)]",
                        "--seeds", "1", "--real-lrs", "0.01")  # fmt: skip
    assert code == 0 and "GTN, 2 steps" in out
    _one_line_error(capsys, "gtn", "train", "--inner-rule", "lars", "--outer-steps", "1",
                    "--logdir", str(tmp_path / "x"), contains=("lars",))  # fmt: skip


def test_gtn_init_from_another_run(capsys, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    assert _run(capsys, "gtn", "train", "--outer-steps", "1", "--logdir", str(first),
                *GTN_TINY)[0] == 0  # fmt: skip
    code, out, _ = _run(capsys, "gtn", "train", "--outer-steps", "1", "--logdir", str(second),
                        "--init-from", str(first), "--checkpoint-inner", *GTN_TINY)  # fmt: skip
    assert code == 0, out
    import torch

    a = torch.load(first / "checkpoint.pt", weights_only=True)
    b = torch.load(second / "checkpoint.pt", weights_only=True)
    assert b["extra"]["init_from"] == str(first) and b["meta_config"]["checkpoint"] is True
    assert a["teacher"].keys() == b["teacher"].keys()
    other_generator = ["--noise-dim", "4", "--inner-steps", "2", "--inner-batch", "16",
                       "--generator-hidden", "32", "--no-progress"]  # fmt: skip
    line = _one_line_error(capsys, "gtn", "train", "--outer-steps", "1", "--logdir",
                           str(tmp_path / "x"), "--init-from", str(first), *other_generator,
                           contains=("teacher settings differ", "noise_dim"))  # fmt: skip
    assert "--warm-start" not in line  # a warm start would not bridge a different generator
    _one_line_error(capsys, "gtn", "train", "--outer-steps", "1", "--logdir", str(tmp_path / "y"),
                    "--init-from", str(first), "--warm-start", "2", *other_generator,
                    contains=("noise_dim", "only inner_batch may differ"))  # fmt: skip


def test_gtn_warm_start_refits_another_run_at_a_new_inner_batch(capsys, tmp_path):
    import torch

    tiny = GTN_TINY_ANY_BATCH
    first, second = tmp_path / "first", tmp_path / "second"
    assert _run(capsys, "gtn", "train", "--outer-steps", "1", "--logdir", str(first),
                "--inner-batch", "16", *tiny)[0] == 0  # fmt: skip
    # Without a warm start the new batch is refused, naming the setting and the way out.
    _one_line_error(capsys, "gtn", "train", "--outer-steps", "1", "--logdir", str(tmp_path / "x"),
                    "--init-from", str(first), "--inner-batch", "32", *tiny,
                    contains=("inner_batch", "(16, 32)", "--warm-start"))  # fmt: skip
    code, out, _ = _run(capsys, "gtn", "train", "--outer-steps", "1", "--logdir", str(second),
                        "--init-from", str(first), "--inner-batch", "32", "--warm-start", "2",
                        "--meta-train", "schedule", "--max-minutes", "0", *tiny)  # fmt: skip
    assert code == 0, out
    a = torch.load(first / "checkpoint.pt", weights_only=True)
    b = torch.load(second / "checkpoint.pt", weights_only=True)
    assert b["teacher_config"]["inner_batch"] == 32 and b["extra"]["init_from_changed"] == [
        "inner_batch"
    ]
    assert b["teacher"]["curriculum.noise"].shape[1] == 32
    assert a["teacher"]["curriculum.noise"].shape[1] == 16
    # The schedule carries over untouched (no outer step ran); the generator was refitted from
    # the first run's weights, not from a fresh initialisation.
    for key in ("schedule.log_lr", "schedule.momentum_logit"):
        assert torch.equal(a["teacher"][key], b["teacher"][key])
    fresh = tmp_path / "fresh"
    assert _run(capsys, "gtn", "train", "--outer-steps", "1", "--logdir", str(fresh),
                "--inner-batch", "32", "--warm-start", "2", "--meta-train", "schedule",
                "--max-minutes", "0", "--seed", "1", *tiny)[0] == 0  # fmt: skip
    c = torch.load(fresh / "checkpoint.pt", weights_only=True)
    key = next(k for k in a["teacher"] if k.startswith("generator.") and "weight" in k)
    gap_init = (b["teacher"][key] - a["teacher"][key]).norm()
    gap_fresh = (c["teacher"][key] - a["teacher"][key]).norm()
    assert gap_init < gap_fresh


def test_gtn_warm_start_is_recorded_and_refused_where_it_cannot_apply(capsys, tmp_path):
    import torch

    run = tmp_path / "warm"
    code, out, _ = _run(capsys, "gtn", "train", "--outer-steps", "1", "--logdir", str(run),
                        "--warm-start", "3", "--warm-start-lr", "0.01", *GTN_TINY)  # fmt: skip
    assert code == 0 and "warm start: 3 fit steps" in out, out
    warm = torch.load(run / "checkpoint.pt", weights_only=True)["extra"]["warm_start"]
    assert warm["steps"] == 3 and warm["lr"] == 0.01 and warm["final_mse"] > 0
    _one_line_error(capsys, "gtn", "train", "--resume", str(run), "--warm-start", "3",
                    contains=("--warm-start", "--resume"))  # fmt: skip
    # Refitting an initialised teacher keeps its schedule and records the selection.
    refit = tmp_path / "refit"
    code, out, _ = _run(capsys, "gtn", "train", "--outer-steps", "1", "--logdir", str(refit),
                        "--init-from", str(run), "--warm-start", "2", "--warm-start-select",
                        "kmeans", "--meta-train", "schedule", *GTN_TINY)  # fmt: skip
    assert code == 0, out
    state = torch.load(refit / "checkpoint.pt", weights_only=True)
    assert state["extra"]["warm_start"]["select"] == "kmeans"
    assert state["extra"]["init_from"] == str(run)
    _one_line_error(capsys, "gtn", "train", "--outer-steps", "1", "--logdir", str(tmp_path / "z"),
                    "--warm-start", "2", "--warm-start-select", "nearest", *GTN_TINY,
                    contains=("'nearest'",))  # fmt: skip
    _one_line_error(capsys, "gtn", "train", "--outer-steps", "1", "--logdir", str(tmp_path / "x"),
                    "--warm-start", "3", "--curriculum", "none", *GTN_TINY,
                    contains=("'none'",))  # fmt: skip
    _one_line_error(capsys, "gtn", "train", "--outer-steps", "1", "--logdir", str(tmp_path / "y"),
                    "--meta-train", "pixels", *GTN_TINY, contains=("'pixels'",))  # fmt: skip


def test_gtn_bad_checkpoint_is_one_line(capsys, tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"nope")
    _one_line_error(capsys, "gtn", "sample", str(tmp_path), contains=("checkpoint.pt",))
    _one_line_error(capsys, "gtn", "train", "--curriculum", "weird", "--outer-steps", "1",
                    "--logdir", str(tmp_path / "x"), contains=("weird",))  # fmt: skip


def test_dataset_distillation_run_and_side_by_side_eval(capsys, tmp_path):
    gtn, dd = tmp_path / "gtn", tmp_path / "dd"
    assert (
        _run(capsys, "gtn", "train", "--outer-steps", "1", "--logdir", str(gtn), *GTN_TINY)[0] == 0
    )
    code, out, _ = _run(capsys, "gtn", "train", "--method", "dd", "--dd-steps", "2", "--dd-epochs",
                        "1", "--outer-steps", "2", "--meta-batch", "32", "--eval-archs", "0",
                        "--logdir", str(dd), "--no-progress")  # fmt: skip
    assert code == 0, out
    assert "after 2 synthetic steps" in out
    code, out, _ = _run(capsys, "gtn", "eval", str(gtn), "[C(16,3,1), P(2,2), FC(64), SM(10)]",
                        "--seeds", "1", "--real-lrs", "0.01", "--dd", str(dd))  # fmt: skip
    assert code == 0, out
    assert "GTN, 2 steps" in out and "DD, 2 steps of 10" in out
