"""The agents experiment: its config (full and quick), config errors, the summaries it reports
(stage means, curves) and its lines on the SB3 agents. The quick run itself is in
``test_quick.py``."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.agents import Config
from experiments.common.agents_report import (
    composition,
    curves,
    sb3_line,
    stage_means,
    summarize,
)
from experiments.harness import CONFIG_DIR, load_config
from metaqnn.errors import ConfigError
from metaqnn.search.baselines import AgentRun
from metaqnn.search.schedule import EpsilonSchedule


def _run(rewards, agent="x", seed=0, stopped="budget"):
    n = len(rewards)
    return AgentRun(agent, seed, tuple(f"a{i}" for i in range(n)), tuple(rewards), n + 1, 1, 0,
                    3 * n, 2.0, 1.0, stopped)  # fmt: skip


def test_full_and_quick_configs_load():
    full = load_config(Config, CONFIG_DIR / "agents.toml")
    quick = load_config(Config, CONFIG_DIR / "agents.toml", quick=True)
    assert EpsilonSchedule.parse(full.schedule).total == 104 and len(full.seeds) == 5
    assert {"qlearning", "random"} <= set(full.agents) and full.teacher_dir
    assert EpsilonSchedule.parse(quick.schedule).total == 10 and quick.teacher_dir == ""
    assert quick.agents == full.agents  # the same code path, smaller
    assert {"ppo", "maskable_ppo"} <= set(quick.agents)  # the masked row beside the unmasked


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"agents": ("qlearning", "sac")}, r"unknown \['sac'\]"),
        ({"agents": ()}, "agents"),
        ({"seeds": (1, 1)}, "distinct"),
        ({"window": 0}, "window=0"),
        ({"schedule": "fast"}, "unknown schedule 'fast'"),
    ],
)
def test_bad_config_is_named(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Config(**kwargs)


def test_stage_means_group_models_by_schedule_position():
    schedule = EpsilonSchedule.parse("1.0:2,0.5:2")
    runs = [_run([0.1, 0.3, 0.5, 0.7]), _run([0.3, 0.5, 0.9])]
    assert stage_means(runs, schedule) == pytest.approx([0.3, (0.5 + 0.7 + 0.9) / 3])


def test_curves_pad_short_runs_with_nan():
    best, roll = curves([_run([0.2, 0.1, 0.4]), _run([0.5], stopped="step cap")], 3, 2)
    assert best[0].tolist() == [0.2, 0.2, 0.4] and best[1, 0] == 0.5
    assert np.isnan(best[1, 1:]).all() and roll[0] == pytest.approx([0.2, 0.15, 0.25])


def test_summary_counts():
    config = Config(top=2, window=2)
    s = summarize([_run([0.2, 0.6]), _run([0.4, 0.4], stopped="step cap")], config)
    assert s["best_mean"] == pytest.approx(0.5) and s["top_mean"] == pytest.approx(0.4)
    assert s["episodes"] == 6 and s["repeats"] == 2 and s["stopped_at_cap"] == 1


def test_composition_splits_first_stage_from_the_rest():
    run = AgentRun("x", 0, ("[SM(10)]", "[GAP, SM(10)]", "[C(16,3,1), P(2,2), SM(10)]"),
                   (0.1, 0.2, 0.9), 3, 0, 0, 6, 1.0, 0.5, "budget")  # fmt: skip
    c = composition([run], first=2)
    assert c["first_layers"] == 1.5 and c["rest_layers"] == 3.0
    assert c["first_gap_share"] == 0.5 and c["rest_gap_share"] == 0.0
    assert c["first_reward"] == pytest.approx(0.15) and c["rest_reward"] == pytest.approx(0.9)


def test_report_tells_the_masked_agent_from_the_unmasked_one():
    masked, plain = sb3_line("maskable_ppo"), sb3_line("ppo")
    assert masked.startswith("- `maskable_ppo`: sb3-contrib MaskablePPO (reads the action masks),")
    assert plain.startswith("- `ppo`: stable-baselines3 PPO, MlpPolicy, n_steps=64,")
    assert masked.split("MlpPolicy, ")[1] == plain.split("MlpPolicy, ")[1]  # PPO's settings
