"""Accuracy-against-steps helpers shared by the curricula and gtn_vs_dd experiments."""

from __future__ import annotations

import pytest
import torch

from envs.layers import Architecture
from experiments.common.steps_curve import (
    CurvePoint,
    check_steps,
    curve_table,
    plot_curves,
    real_curve,
    subset,
    summarize,
    teacher_curve,
    timed_points,
    tuned,
)
from gtn.distill import DistilledData
from gtn.teacher import GTNTeacher
from metaqnn.core.data import load_dataset
from metaqnn.core.training import evaluate
from metaqnn.teacher.shapes import distill_config, fixed_learner_factory, teacher_config

ARCH = Architecture.parse("[C(4,3,1), P(2,2), FC(8), SM(10)]")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", val_size=100)


@pytest.fixture(scope="module")
def factory(digits):
    return fixed_learner_factory(ARCH, digits)


def _gtn(digits, curriculum: str = "shuffled-batch") -> GTNTeacher:
    config = teacher_config(digits, curriculum=curriculum, inner_steps=4, inner_batch=16,
                            generator_hidden=16, generator_noise_dim=4)  # fmt: skip
    return GTNTeacher(config)


@pytest.mark.parametrize("curriculum", ["shuffled-batch", "none", "full"])
def test_teacher_curve_point_equals_teaching_k_steps(digits, factory, curriculum):
    teacher = _gtn(digits, curriculum)
    points = teacher_curve(teacher, factory, digits.test, [2, 9], [3], method="gtn")
    # 9 is beyond the teacher's 4 steps: dropped; its end point 4 is always scored
    assert [(p.steps, p.seed) for p in points] == [(2, 3), (4, 3)]
    for p in points:
        taught = teacher.teach(factory(3), p.steps, seed=3)
        assert p.test_accuracy == pytest.approx(evaluate(taught, digits.test).accuracy)
        assert p.method == "gtn" and p.lr is None


def test_teacher_curve_of_distilled_data_replays_its_epochs(digits, factory):
    dd = DistilledData(distill_config(digits, steps=2, epochs=3))
    points = teacher_curve(dd, factory, digits.test, [1, 5, 32], [0, 1], method="dd")
    assert sorted({p.steps for p in points}) == [1, 5, 6]
    five = next(p for p in points if p.steps == 5 and p.seed == 1)
    taught = dd.teach(factory(1), 5)
    assert five.test_accuracy == pytest.approx(evaluate(taught, digits.test).accuracy)


def test_real_curve_is_seeded_and_prefix_consistent(digits, factory):
    args = (factory, digits.train, digits.val, digits.test)
    a = real_curve(*args, [1, 3], [0, 1], [0.01, 0.1], batch_size=8)
    b = real_curve(*args, [1, 3], [0, 1], [0.01, 0.1], batch_size=8)
    assert a == b and len(a) == 2 * 2 * 2
    assert len({p.test_accuracy for p in a}) > 1  # lrs and seeds do make a difference
    # the 3-step point of a longer run is a run of 3 steps
    short = real_curve(*args, [3], [1], [0.1], batch_size=8)
    assert short[0] == next(p for p in a if p.steps == 3 and p.seed == 1 and p.lr == 0.1)
    assert all(p.val_accuracy is not None for p in a)
    # learning from real data beats chance on digits after 3 steps of lr 0.1
    assert short[0].test_accuracy > 0.2


def test_real_curve_rejects_bad_input(digits, factory):
    args = (factory, digits.train, digits.val, digits.test, [1], [0])
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        real_curve(*args, [0.1], batch_size=8, optimizer="rmsprop")
    with pytest.raises(ValueError, match="batch_size=0"):
        real_curve(*args, [0.1], batch_size=0)
    with pytest.raises(ValueError, match=r"counts must be >= 1, got \[0\]"):
        check_steps([0, 2])
    with pytest.raises(ValueError, match="at least one"):
        check_steps([])


def _point(lr: float, seed: int, k: int, val: float, test: float) -> CurvePoint:
    return CurvePoint("real", k, seed, test, val_accuracy=val, lr=lr)


def test_tuned_picks_the_best_validation_lr_per_step_count():
    points = [
        _point(0.1, 0, 1, 0.5, 0.50), _point(0.1, 1, 1, 0.7, 0.70),  # mean val 0.6
        _point(0.01, 0, 1, 0.4, 0.99), _point(0.01, 1, 1, 0.4, 0.99),  # better test, worse val
        _point(0.1, 0, 2, 0.2, 0.2), _point(0.1, 1, 2, 0.2, 0.2),
        _point(0.01, 0, 2, 0.9, 0.8), _point(0.01, 1, 2, 0.9, 0.8),
    ]  # fmt: skip
    chosen = tuned(points, "real")
    assert {(p.steps, p.lr) for p in chosen} == {(1, 0.1), (2, 0.01)}
    summary = {s.steps: s for s in summarize(chosen)}
    assert summary[1].mean == pytest.approx(0.6) and summary[1].std == pytest.approx(0.1)
    assert summary[1].lr == 0.1 and summary[1].seeds == 2
    table = curve_table(summarize(chosen), ["real", "absent"])
    assert "60.00 ± 10.00 (lr 0.1)" in table and "80.00 ± 0.00 (lr 0.01)" in table
    with pytest.raises(ValueError, match="no points of method 'gtn'"):
        tuned(points, "gtn")


def test_plot_and_helpers(tmp_path, digits):
    points = [_point(0.1, s, k, 0.5, 0.1 * k + 0.01 * s) for s in (0, 1) for k in (1, 2, 4)]
    path = plot_curves(summarize(points), ["real"], tmp_path / "c.png", title="t",
                       references=[("ref", 0.5, 0.1)])  # fmt: skip
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert len(subset(digits.test, 10)) == 10 and subset(digits.test, 0) is digits.test
    record = timed_points(lambda: points[:1])
    assert record["rows"][0]["lr"] == 0.1 and record["cpu_s"] >= 0 and record["wall_s"] >= 0
    assert torch.get_num_threads() >= 1
