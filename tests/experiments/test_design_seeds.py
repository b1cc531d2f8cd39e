"""``experiments/artifacts/design_seeds.py``: the seeds table of stored ``metaqnn design`` runs,
with each winner measured against the hand net trained beside it in the same run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "experiments" / "artifacts"
FC14 = sorted(ARTIFACTS.glob("design_fashion-mnist_fc14_*_s[012]"))


@pytest.fixture
def design_seeds(monkeypatch):
    monkeypatch.syspath_prepend(str(ARTIFACTS))
    import design_seeds

    yield design_seeds
    for name in ("design_seeds", "stored_search"):
        sys.modules.pop(name, None)


def test_the_hand_gap_is_the_winner_minus_the_hand_net_of_its_own_run(design_seeds):
    run = design_seeds.load(ARTIFACTS / "design_fashion-mnist_fc14_random_s1")
    assert run["test_error_pct"] == pytest.approx(8.01, abs=0.005)
    assert design_seeds.hand_gap(run) == pytest.approx(8.01 - 8.25, abs=0.01)


def test_the_fc14_table_gives_each_agents_gap_and_the_pairs(design_seeds, monkeypatch, capsys):
    assert len(FC14) == 6, "three seeds of each agent are stored"
    monkeypatch.setattr(sys, "argv", ["design_seeds.py", *map(str, FC14)])
    design_seeds.main()
    out = capsys.readouterr().out
    assert "qlearning: winner 8.06 ± 0.83 %" in out and "random: winner 8.59 ± 0.52 %" in out
    assert "hand net of its run +0.18 ± 0.67 points" in out
    assert "hand net of its run +0.07 ± 0.28 points" in out
    assert "hand net lower than random's at 2 of 3 seeds" in out
    assert out.count("exact McNemar") == 3
