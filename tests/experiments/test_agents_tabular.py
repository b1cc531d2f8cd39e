"""The regret arithmetic of ``agents_tabular``: by architectures, by simulated time, the
summaries, and MetaQNN's schedule scaled to a budget."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.agents_tabular import Config, _schedule
from experiments.common.tabular_report import regret_curve, regret_summary, time_curve
from metaqnn.errors import ConfigError
from metaqnn.search.schedule import EpsilonSchedule


def test_regret_falls_with_the_best_so_far_and_pads_an_early_stop():
    curve = regret_curve([0.5, 0.7, 0.6, 0.9], best=0.9, budget=6)
    assert np.allclose(curve, [0.4, 0.2, 0.2, 0.0, 0.0, 0.0])
    assert np.allclose(regret_curve([], best=0.9, budget=2), [0.9, 0.9])


def test_simulated_time_counts_a_reward_once_its_training_is_done():
    cost = {"a": 10.0, "b": 5.0, "c": 20.0}
    grid = np.array([0.0, 9.9, 10.0, 14.9, 15.0, 35.0])
    curve = time_curve(["a", "b", "c"], [0.5, 0.8, 0.6], cost, best=1.0, grid=grid)
    assert np.allclose(curve, [1.0, 1.0, 0.5, 0.5, 0.2, 0.2])


def test_summary_has_mean_sd_interval_and_share_that_found_the_best():
    curves = np.array([[0.3, 0.0], [0.1, 0.1]])
    s = regret_summary(curves, (1, 2))
    assert s["runs"] == 2 and s["regret_at_1"] == pytest.approx(0.2)
    assert s["regret_at_1_sd"] == pytest.approx(np.std([0.3, 0.1], ddof=1))
    assert (
        s["found_best_by_2"] == 0.5 and s["regret_at_2_ci95"][0] < 0.05 < s["regret_at_2_ci95"][1]
    )


@pytest.mark.parametrize("budget", [10, 100, 500, 2700])
def test_the_paper_schedule_scaled_to_exactly_the_budget(budget):
    schedule = EpsilonSchedule.parse(_schedule(budget))
    assert schedule.total == budget and schedule.stages[0][0] == 1.0


def test_bad_budgets_and_agents_are_clear_errors():
    with pytest.raises(ConfigError, match="checkpoint"):
        Config(budget=50, checkpoints=(100,))
    with pytest.raises(ConfigError, match="no-such-agent"):
        Config(agents=("no-such-agent",))
