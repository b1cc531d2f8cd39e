"""Figure 3 of a short run draws its rolling mean (the window scales with the run), and its
axis names the reward the search used."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from metaqnn.rewards.spec import RewardSpec
from metaqnn.search.report import plot_figure3, reward_label, rolling_window
from metaqnn.search.store import ModelRecord


def _record(i: int, n: int) -> ModelRecord:
    eps = 1.0 if i < n / 2 else 0.5
    return ModelRecord(i + 1, f"[C({i + 1},3,1), SM(10)]", "ok", "", 0.5 + i / (2 * n), 0.5,
                       None, None, None, eps, 1.0, "w", 1, "")  # fmt: skip


def _models(n: int) -> list[ModelRecord]:
    return [_record(i, n) for i in range(n)]


@pytest.mark.parametrize(("n", "window"), [(1, 1), (20, 2), (54, 5), (300, 30), (2700, 50)])
def test_the_window_is_a_tenth_of_the_run_within_2_and_50(n, window):
    assert rolling_window(n) == window


@pytest.mark.parametrize("n", [20, 54])
def test_a_short_run_draws_a_rolling_line_and_names_its_reward(n, tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plt, "close", lambda fig=None: figures.append(fig))
    label = reward_label(RewardSpec(name="gtn", dataset="digits"))
    plot_figure3(_models(n), tmp_path / "f.png", reward_label=label)
    ax = figures[0].axes[0]
    line = ax.get_lines()[0]
    assert len(line.get_xdata()) >= n - rolling_window(n) + 1 > n // 2
    assert ax.get_ylabel() == label and "GTN" in label
    assert "epochs" in reward_label(RewardSpec(name="real", dataset="digits", epochs=3))
