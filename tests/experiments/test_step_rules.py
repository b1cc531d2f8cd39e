"""``python -m experiments step_rules --quick`` on the embedded digits data."""

import json

from experiments import step_rules
from experiments.harness import main


def test_quick_run_writes_every_rule_and_rate(tmp_path):
    out = tmp_path / "out"
    argv = ["--quick", "--no-progress", "--out", str(out), "--work", str(tmp_path / "work")]
    assert main(step_rules.NAME, step_rules.Config, step_rules.run, argv) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["config"]["dataset"] == "digits" and result["config"]["width_divisor"] == 1
    expected = {f"{rule} {lr:g}" for rule, lrs in step_rules.GRID.items() for lr in lrs}
    assert len(result["rows"]) == 2
    for row in result["rows"]:
        assert set(row["accuracy"]) == expected
        assert all(0.0 <= a <= 1.0 for a in row["accuracy"].values())
    summary = result["summary"]
    assert summary["oracle_median"] >= max(summary["medians"].values())
    assert "| relative 0.03 |" in (out / "results.md").read_text()
