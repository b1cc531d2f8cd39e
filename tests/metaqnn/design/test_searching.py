"""The search phase's agents and its schedule sized to the time: a schedule replaced mid-run
(and kept by a resume), and a Q-learning schedule that reaches its greedy stages within the
time whatever the probes guessed."""

from __future__ import annotations

import time

import pytest

from envs.layers import Architecture
from metaqnn.design.searching import AGENTS, check_agent, run_sized
from metaqnn.errors import ConfigError
from metaqnn.search.loop import Search, SearchConfig
from metaqnn.search.schedule import EpsilonSchedule


def slow_reward(arch: Architecture) -> float:
    time.sleep(0.01)
    return 1.0 / len(arch.layers)


def test_agents_are_schedules_of_the_requested_size():
    for n in (37, 630, 1939):
        assert EpsilonSchedule.parse(AGENTS["qlearning"](n)).total == n
        assert EpsilonSchedule.parse(AGENTS["random"](n)).stages == ((1.0, n),)
    with pytest.raises(ConfigError, match="unknown search agent 'greedy'"):
        check_agent("greedy")


def test_a_schedule_replaced_mid_run_is_kept_by_a_resume(tmp_path):
    search = Search.create(SearchConfig(schedule="1.0:5"), tmp_path / "run", reward=slow_reward)
    search.run(progress=False)
    assert search.finished and search.done == 5
    search.reschedule("1.0:5,0.1:3")
    assert not search.finished
    with pytest.raises(ConfigError, match="4 models; 5 are already recorded"):
        search.reschedule("1.0:4")
    search.run(progress=False)
    assert search.done == 8 and [m.epsilon for m in search.models][-3:] == [0.1] * 3
    search.close()
    again = Search.resume(tmp_path / "run", reward=slow_reward)
    assert again.schedule.total == 8 and again.finished
    again.close()


def test_run_sized_reaches_the_greedy_stages_in_time(tmp_path, capsys):
    # the probes guessed far too cheap a reward: a schedule 20 times too long
    config = SearchConfig(schedule=AGENTS["qlearning"](4000), replay=5)
    search = Search.create(config, tmp_path / "run", reward=slow_reward)
    start = time.perf_counter()
    run_sized(search, 3.0, "qlearning", progress=False)
    assert time.perf_counter() - start < 4.0
    assert search.schedule.total < 4000  # re-sized to the measured cost
    assert min(m.epsilon for m in search.models) < 1.0  # it left the random stage
    # its slices end on a time limit, and do not tell the user to resume after each
    assert "--resume" not in capsys.readouterr().out
    search.close()
