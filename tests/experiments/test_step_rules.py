"""``python -m experiments.step_rules --quick`` on the embedded digits data."""

import json
import sys

from experiments import step_rules


def test_quick_run_writes_every_rule_and_rate(monkeypatch, tmp_path):
    out = tmp_path / "step_rules"
    monkeypatch.setattr(sys, "argv", ["step_rules", "--dataset", "digits", "--width-divisor", "1",
                                      "--quick", "--no-progress", "--out", str(out)])  # fmt: skip
    step_rules.main()
    result = json.loads(out.with_suffix(".json").read_text())
    expected = {f"{rule} {lr:g}" for rule, lrs in step_rules.GRID.items() for lr in lrs}
    assert len(result["rows"]) == 2
    for row in result["rows"]:
        assert set(row["accuracy"]) == expected
        assert all(0.0 <= a <= 1.0 for a in row["accuracy"].values())
    summary = result["summary"]
    assert summary["oracle_median"] >= max(summary["medians"].values())
    assert "| relative 0.03 |" in out.with_suffix(".md").read_text()
