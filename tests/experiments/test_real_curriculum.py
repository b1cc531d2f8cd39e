"""``python -m experiments.real_curriculum --quick`` on a tiny digits GTN run."""

import json
import sys

import pytest

from experiments import real_curriculum
from metaqnn.cli import main as cli

TINY = ["--inner-steps", "2", "--inner-batch", "20", "--generator-hidden", "32", "--noise-dim",
        "8", "--meta-batch", "32", "--eval-archs", "0", "--no-progress"]  # fmt: skip


def test_quick_run_scores_the_generator_and_every_real_curriculum(monkeypatch, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli(["gtn", "train", "--outer-steps", "1", "--logdir", str(run), *TINY]) == 0
    out = tmp_path / "real"
    monkeypatch.setattr(sys, "argv", ["real_curriculum", str(run), "--select", "random,kmeans",
                                      "--seeds", "0,1", "--quick", "--no-progress",
                                      "--out", str(out)])  # fmt: skip
    real_curriculum.main()
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    names = [r["curriculum"] for r in rows]
    assert names == ["generator", "real random 0", "real random 1", "real kmeans 0",
                     "real kmeans 1"]  # fmt: skip
    for r in rows:
        assert len(r["accuracy"]) == 3 and all(0.0 <= a <= 1.0 for a in r["accuracy"])
        assert r["q1"] <= r["median"] <= r["q3"]
    assert "| real kmeans 1 |" in out.with_suffix(".md").read_text()
    monkeypatch.setattr(sys, "argv", ["real_curriculum", str(run), "--select", "nearest"])
    with pytest.raises(SystemExit, match="nearest"):
        real_curriculum.main()
