"""Every experiment's ``--quick`` mode runs end to end (CI's smoke test of the experiments)."""

from __future__ import annotations

import json

import pytest

from experiments.__main__ import run_named
from experiments.harness import experiment_names


@pytest.mark.slow
@pytest.mark.parametrize("name", experiment_names())
def test_quick_mode_runs(name, tmp_path, shared_data_root):
    argv = [
        "--quick",
        "--no-progress",
        "--data-root",
        str(shared_data_root),
        "--out",
        str(tmp_path / "out"),
        "--work",
        str(tmp_path / "work"),
    ]
    assert run_named(name, argv) == 0
    record = json.loads((tmp_path / "out" / "results.json").read_text())
    assert record["quick"] is True and record["summary"]
    assert (tmp_path / "out" / "results.md").read_text().strip()


def test_unknown_experiment_is_a_clear_error(capsys):
    assert run_named("no-such-experiment", []) == 2
    assert "unknown experiment 'no-such-experiment'" in capsys.readouterr().err
