"""The learned-optimizer comparison's paired statistics (no training)."""

from __future__ import annotations

import pytest

from metaqnn.learned_optimizer.comparison import ComparisonConfig
from metaqnn.learned_optimizer.evaluation import RunEvaluation, paired_difference


def _rows(values: list[float], seeds: list[int] | None = None) -> list[dict]:
    seeds = seeds if seeds is not None else list(range(len(values)))
    return [{"seed": s, "val_noisy_loss": v} for s, v in zip(seeds, values, strict=True)]


def test_paired_difference_matches_seeds_and_counts_wins():
    a = _rows([0.1, 0.5, 0.2], seeds=[2, 0, 1])  # order differs from b's
    b = _rows([0.4, 0.3, 0.3])
    d = paired_difference(a, b)
    # per seed: 0: 0.5 - 0.4, 1: 0.2 - 0.3, 2: 0.1 - 0.3
    assert d.n == 3 and d.wins == 2
    assert d.mean == pytest.approx((0.1 - 0.1 - 0.2) / 3)
    assert d.sem == pytest.approx(d.std / 3**0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        paired_difference(_rows([0.1, 0.2]), b)


def test_evaluation_reports_the_paired_table():
    config = ComparisonConfig(eval_seeds=(0, 1), corruptions=(), test_noise=(0.0,))
    rows = {}
    for name, values in (("learned", [0.2, 0.3]), ("adam_clean", [0.25, 0.28])):
        rows[name] = [
            {"seed": s, "val_noisy_loss": v, "val_clean_loss": v, "final_train_loss": v,
             "test_loss@0": v, "test_acc@0": 0.9, "corruption/mean": 0.8}
            for s, v in enumerate(values)
        ]  # fmt: skip
    evaluation = RunEvaluation(config, {"adam_clean": 0.01}, {}, rows, {})
    text = evaluation.markdown()
    assert "learned lower on" in text and "1 of 2" in text
    paired = evaluation.to_dict()["paired_val_noisy_loss"]["adam_clean"]
    assert paired["wins"] == 1 and paired["mean"] == pytest.approx(-0.015)
    again = RunEvaluation.from_dict(evaluation.to_dict())
    assert again.paired()["adam_clean"].wins == 1
