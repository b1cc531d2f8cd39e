"""A battery of bad inputs across the subcommands: each exits 2 with exactly one line on
stderr (``metaqnn: error: ...``) naming the bad value, and leaves no run folder behind."""

from __future__ import annotations

import pytest

from metaqnn.cli import main

SEARCH = ["search", "--dataset", "digits", "--reward", "real", "--epochs", "1"]
DESIGN = ["design", "--dataset", "digits", "--budget", "10m"]

CASES = {
    "search --max-models -1": ([*SEARCH, "--max-models", "-1"], "--max-models -1"),
    "search --max-minutes nan": ([*SEARCH, "--max-minutes", "nan"], "--max-minutes nan"),
    "search --max-minutes -5": ([*SEARCH, "--max-minutes", "-5"], "--max-minutes -5"),
    "search --seed -1": ([*SEARCH, "--seed", "-1"], "seed=-1"),
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
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_bad_input_is_one_line_and_leaves_no_run(name, capsys, tmp_path):
    argv, words = CASES[name]
    run = tmp_path / "run"
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if argv[0] in ("search", "design") and "--resume" not in argv:
        argv += ["--logdir", str(run)]
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("metaqnn: error: "), err
    assert words in err[0], err[0]
    assert not run.exists()
