"""A battery of bad inputs across the subcommands: each exits 2 with exactly one line on
stderr (``metaqnn: error: ...``) naming the bad value, and leaves no run folder behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from metaqnn.cli import main

REPO = Path(__file__).resolve().parents[2]
SEARCH = ["search", "--dataset", "digits", "--reward", "real", "--epochs", "1"]
DESIGN = ["design", "--dataset", "digits", "--budget", "10m"]
CORRELATION = ["evaluate", "correlation", "{tmp}/r.csv", "--cheap", "a", "--reference", "b"]
GTN_TRAIN = ["gtn", "train", "--dataset", "digits", "--outer-steps", "1"]
TRAIN = ["train", "[C(8,3,1), SM(10)]", "--dataset", "digits", "--out", "{tmp}/run/m.pt"]

CASES = {
    "search --max-models -1": ([*SEARCH, "--max-models", "-1"], "--max-models -1"),
    "search --max-minutes nan": ([*SEARCH, "--max-minutes", "nan"], "--max-minutes nan"),
    "search --max-minutes -5": ([*SEARCH, "--max-minutes", "-5"], "--max-minutes -5"),
    "search --seed -1": ([*SEARCH, "--seed", "-1"], "--seed -1"),
    "search --schedule bogus": ([*SEARCH, "--schedule", "bogus"], "bogus"),
    "search unknown teacher name": (
        ["search", "--dataset", "digits", "--reward", "gtn", "--gtn-checkpoint", "nosuchname"],
        "nosuchname",
    ),
    "search --resume missing": (["search", "--resume", "{tmp}/missing"], "missing"),
    "design --agent greedy": ([*DESIGN, "--agent", "greedy"], "'greedy'"),
    "design --reward flops": ([*DESIGN, "--reward", "flops"], "'flops'"),
    "design --real-epochs 0": ([*DESIGN, "--real-epochs", "0"], "--real-epochs 0"),
    "design --final-width-divisor 0": (
        [*DESIGN, "--final-width-divisor", "0"],
        "--final-width-divisor 0",
    ),
    "design --width-divisor 0": ([*DESIGN, "--width-divisor", "0"], "--width-divisor 0"),
    "design --budget 0": (["design", "--budget", "0"], "--budget '0'"),
    "design --seed -1": ([*DESIGN, "--seed", "-1"], "--seed -1"),
    "design --precision fp8": ([*DESIGN, "--precision", "fp8"], "precision 'fp8'"),
    "design unknown teacher name": ([*DESIGN, "--gtn-checkpoint", "nosuchname"], "nosuchname"),
    "design --resume missing": (["design", "--resume", "{tmp}/missing"], "missing"),
    "gtn export missing run": (
        ["gtn", "export", "{tmp}/missing", "--out", "{tmp}/x.pt"],
        "missing",
    ),
    "gtn train --resume missing": (["gtn", "train", "--resume", "{tmp}/missing"], "missing"),
    "export missing checkpoint": (
        ["export", "{tmp}/missing.pt", "--out", "{tmp}/m.ts.pt"],
        "missing.pt",
    ),
    # numeric options: range, sign and finiteness, checked before any work (metaqnn.cli.checks)
    "gtn train --grad-clip -1": ([*GTN_TRAIN, "--grad-clip", "-1"], "--grad-clip -1"),
    "gtn train --outer-lr nan": ([*GTN_TRAIN, "--outer-lr", "nan"], "--outer-lr nan"),
    "gtn train --outer-lr inf": ([*GTN_TRAIN, "--outer-lr", "inf"], "--outer-lr inf"),
    "gtn train --outer-lr abc": ([*GTN_TRAIN, "--outer-lr", "abc"], "'abc'"),
    "gtn train --outer-lr 1e6": ([*GTN_TRAIN, "--outer-lr", "1e6"], "--outer-lr 1000000.0"),
    "gtn train --truncate -1": ([*GTN_TRAIN, "--truncate", "-1"], "--truncate -1"),
    "gtn train --inner-steps 0": ([*GTN_TRAIN, "--inner-steps", "0"], "--inner-steps 0"),
    "gtn train --meta-batch 0": ([*GTN_TRAIN, "--meta-batch", "0"], "--meta-batch 0"),
    "gtn train --warm-start -5": ([*GTN_TRAIN, "--warm-start", "-5"], "--warm-start -5"),
    "gtn train --init-lr 0": ([*GTN_TRAIN, "--init-lr", "0"], "--init-lr 0"),
    "gtn eval --seeds 0": (
        ["gtn", "eval", "mnist", "[C(8,3,1), SM(10)]", "--seeds", "0"],
        "--seeds 0",
    ),
    "gtn eval --steps -3": (
        ["gtn", "eval", "mnist", "[C(8,3,1), SM(10)]", "--steps", "-3"],
        "--steps -3",
    ),
    "gtn sample --per-class 0": (["gtn", "sample", "mnist", "--per-class", "0"], "--per-class 0"),
    "search --gtn-steps -1": ([*SEARCH, "--gtn-steps", "-1"], "--gtn-steps -1"),
    "search --workers 0": ([*SEARCH, "--workers", "0"], "--workers 0"),
    "search --epochs 0": ([*SEARCH[:-1], "0"], "--epochs 0"),
    "search --replay -1": ([*SEARCH, "--replay", "-1"], "--replay -1"),
    "train --lr nan": ([*TRAIN, "--lr", "nan"], "--lr nan"),
    "train --lr -0.1": ([*TRAIN, "--lr", "-0.1"], "--lr -0.1"),
    "train --epochs 0": ([*TRAIN, "--epochs", "0"], "--epochs 0"),
    "train --precision fp8": ([*TRAIN, "--precision", "fp8"], "fp8"),
    "train --batch-size 0": ([*TRAIN, "--batch-size", "0"], "--batch-size 0"),
    "train --val-size -1": ([*TRAIN, "--val-size", "-1"], "--val-size -1"),
    "design --finalists 0": ([*DESIGN, "--finalists", "0"], "--finalists 0"),
    "report --top 0": (["report", "{tmp}/missing", "--top", "0"], "--top 0"),
    "evaluate correlation --confidence 1.5": (
        [*CORRELATION, "--confidence", "1.5"],
        "--confidence 1.5",
    ),
    "lopt train --sigma 0": (["lopt", "train", "--sigma", "0"], "--sigma 0"),
    "lopt train --noise -0.1": (["lopt", "train", "--noise", "-0.1"], "--noise -0.1"),
    "sample -n 0": (["sample", "-n", "0"], "--count 0"),
    "unknown option": ([*TRAIN, "--no-such-option"], "--no-such-option"),
    # run folders that cannot be written (a file in the way; /proc takes no folders)
    "search --logdir under a file": ([*SEARCH, "--logdir", "{tmp}/file/run"], "{tmp}/file/run"),
    "design --logdir impossible": ([*DESIGN, "--logdir", "/proc/nope/run"], "/proc/nope/run"),
    "gtn train --logdir impossible": ([*GTN_TRAIN, "--logdir", "/proc/nope/run"], "/proc/nope"),
    "gtn export --out a device": (
        ["gtn", "export", "mnist", "--out", "/dev/null", "--force"],
        "not a regular file",
    ),
    "gtn export --out under a file": (
        ["gtn", "export", "mnist", "--out", "{tmp}/file/t.pt"],
        "is not a folder",
    ),
    # architectures too big to build, checked before any allocation (metaqnn.core.limits)
    "train C(99999999999,3,1)": (
        ["train", "[C(99999999999,3,1), SM(10)]", "--dataset", "digits", "--out", "{tmp}/m.pt"],
        "--max-params",
    ),
    "train FC(99999999999)": (
        ["train", "[FC(99999999999), SM(10)]", "--dataset", "digits", "--out", "{tmp}/m.pt"],
        "--max-params",
    ),
    "train 10,000 layers": (
        [
            "train",
            "[" + "C(8,3,1), " * 10_000 + "SM(10)]",
            "--dataset",
            "digits",
            "--out",
            "{tmp}/m.pt",
        ],
        "--max-depth",
    ),
    "validate fullwidth digits": (["validate", "[C(６４,3,1), SM(10)]"], "６４"),
    "search --space mnist on digits": ([*SEARCH, "--space", "mnist"], "--space mnist"),
    "search --gtn-steps beyond the curriculum": (
        [
            "search",
            "--dataset",
            "mnist",
            "--reward",
            "gtn",
            "--gtn-checkpoint",
            "mnist",
            "--gtn-steps",
            "500",
        ],
        "--gtn-steps 500",
    ),
    # outputs that must not be replaced or cannot be written, refused before training
    "train --out a folder": ([*TRAIN[:-1], "{tmp}"], "is a folder"),
    "train --out a device": ([*TRAIN[:-1], "/dev/null", "--force"], "not a regular file"),
    "train --out an existing file": ([*TRAIN[:-1], "{tmp}/file"], "--force"),
    "train --out impossible": ([*TRAIN[:-1], "/proc/nope/m.pt"], "/proc/nope/m.pt"),
    "design --budget abc": (["design", "--budget", "abc"], "'abc'"),
    "evaluate robustness --max-images 0": (
        ["evaluate", "robustness", "{tmp}/m.pt", "--max-images", "0"],
        "--max-images 0",
    ),
    # files of the wrong kind, or missing
    "evaluate a GTN teacher as a model": (
        ["evaluate", "accuracy", "{repo}/gtn/pretrained/mnist.pt"],
        "is a GTN teacher checkpoint",
    ),
    "export a GTN teacher": (
        ["export", "{repo}/gtn/pretrained/mnist.pt", "--out", "{tmp}/x.ts.pt"],
        "is a GTN teacher checkpoint",
    ),
    "gtn sample --out an existing file": (
        ["gtn", "sample", "mnist", "--out", "{tmp}/file"],
        "--force",
    ),
    "gtn sample missing run": (["gtn", "sample", "{tmp}/missing"], "missing"),
    "lopt eval missing run": (["lopt", "eval", "{tmp}/missing"], "missing"),
    # a run of the wrong kind
    "gtn eval --dd with a GTN teacher": (
        ["gtn", "eval", "mnist", "[C(8,3,1), SM(10)]", "--seeds", "1", "--dd", "mnist"],
        "not a Dataset Distillation run",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_bad_input_is_one_line_and_leaves_no_run(name, capsys, tmp_path):
    argv, words = CASES[name]
    run = tmp_path / "run"
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{repo}", str(REPO)) for a in argv]
    words = words.replace("{tmp}", str(tmp_path))
    (tmp_path / "file").write_text("a file, not a folder")
    runs_a_folder = argv[0] in ("search", "design") or argv[:2] == ["gtn", "train"]
    if runs_a_folder and "--resume" not in argv and "--logdir" not in argv:
        argv += ["--logdir", str(run)]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors (an unknown option, a malformed number)
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("metaqnn: error: "), err
    assert words in err[0], err[0]
    assert not run.exists()
