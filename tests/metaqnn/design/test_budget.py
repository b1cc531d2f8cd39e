"""Budgets, presets and the final phase's arithmetic of ``metaqnn design``."""

from __future__ import annotations

import pytest

from envs.layers import Architecture
from envs.space import get_space
from metaqnn.design.budget import BudgetPlan, format_duration, parse_duration
from metaqnn.design.finals import choose_epochs, full_width
from metaqnn.design.presets import PRESETS, get_preset
from metaqnn.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2h", 7200), ("90m", 5400), ("1h30m", 5400), ("45s", 45), ("600", 600), ("1.5h", 5400)],
)
def test_durations_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "2 hours", "-5m", "0", "nan", "inf", "h", "5x"])
def test_bad_durations_are_one_line_errors(text):
    with pytest.raises(ConfigError, match="--budget"):
        parse_duration(text)


def test_durations_format():
    assert [format_duration(s) for s in (5400, 75, 7200, 0.4)] == ["1h30m", "1m15s", "2h", "0s"]


def test_the_budget_splits_by_shares_and_refuses_bad_ones():
    plan = BudgetPlan.split(7200, (0.25, 0.35, 0.4))
    assert (plan.teacher_s, plan.search_s, plan.final_s) == pytest.approx((1800, 2520, 2880))
    assert "final training" in plan.describe() and "40%" in plan.describe()
    for shares in [(0.5, 0.5, 0.5), (-0.1, 0.6, 0.5), (1.0, 0.0)]:
        with pytest.raises(ConfigError, match="shares"):
            BudgetPlan.split(100, shares)


def test_full_width_undoes_the_search_width():
    space = get_space("mnist")
    narrow = Architecture.parse("[C(4,3,1), P(2,2), C(32,5,1), FC(16), FC(8), SM(10)]")
    wide = full_width(narrow, space, 16)
    assert str(wide) == "[C(64,3,1), P(2,2), C(512,5,1), FC(256), FC(128), SM(10)]"
    assert full_width(wide, space, 1) == wide
    with pytest.raises(ConfigError, match="5 filters"):
        full_width(Architecture.parse("[C(5,3,1), SM(10)]"), space, 16)


def test_epochs_fit_the_time_left():
    assert choose_epochs(100, [1.0, 2.0], most=20) == 20
    assert choose_epochs(100, [10.0, 20.0], most=20) == 3  # 0.9 * 100 / 30
    assert choose_epochs(10, [10.0, 20.0], most=20) == 0


def test_every_preset_has_buildable_baselines():
    for name, preset in PRESETS.items():
        assert preset.baselines and preset.width_divisor >= 1, name
        for arch in preset.baselines.values():
            assert Architecture.parse(arch).num_classes == 10
    with pytest.raises(ConfigError, match="no preset for dataset 'svhn'"):
        get_preset("svhn")
