"""``python -m experiments.real_curriculum --quick`` and ``python -m experiments.gtn_space_table
--quick`` on a tiny digits GTN run."""

import json
import sys

import pytest

from experiments import gtn_space_table, real_curriculum
from metaqnn.cli.main import main as cli

TINY = ["--inner-steps", "2", "--inner-batch", "20", "--generator-hidden", "32", "--noise-dim",
        "8", "--meta-batch", "32", "--eval-archs", "0", "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = tmp_path_factory.mktemp("gtn") / "run"
    assert cli(["gtn", "train", "--outer-steps", "1", "--logdir", str(run), *TINY]) == 0
    return run


def test_space_table_quick_run_scores_the_same_architectures(monkeypatch, tmp_path, run):
    out = tmp_path / "table"
    monkeypatch.setattr(sys, "argv", ["gtn_space_table", str(run), "--quick", "--out", str(out)])
    gtn_space_table.main()
    result = json.loads(out.with_suffix(".json").read_text())
    archs = [str(a) for a in gtn_space_table.load_space_run(run, 3).archs]
    assert [r["architecture"] for r in result["rows"]] == archs
    assert all(0.0 <= r["gtn"] <= 1.0 and 0.0 <= r["real"] <= 1.0 for r in result["rows"])
    assert result["summary"]["below_20pct"] == sum(r["gtn"] < 0.2 for r in result["rows"])
    assert result["meta"]["inner_batch"] == int(TINY[TINY.index("--inner-batch") + 1])
    assert "| GTN 2 steps of 20 |" in out.with_suffix(".md").read_text()


def test_quick_run_scores_the_generator_and_every_real_curriculum(monkeypatch, tmp_path, run):
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
    monkeypatch.setattr(sys, "argv", ["real_curriculum", str(run), "--seeds", "0,one"])
    with pytest.raises(SystemExit, match="--seeds: '0,one' is not a comma-separated list"):
        real_curriculum.main()
