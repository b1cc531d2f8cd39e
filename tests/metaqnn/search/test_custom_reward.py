"""A search with a reward handed over from Python: any callable ``Architecture -> float``, or an
object with ``evaluate``. A reward of the wrong shape fails at once; the run remembers which
reward it used."""

from __future__ import annotations

import pytest

from envs.layers import Architecture
from metaqnn.errors import ConfigError
from metaqnn.rewards.result import CallableReward, RewardShapeError, as_reward
from metaqnn.search.loop import Search, SearchConfig

CONFIG = SearchConfig(schedule="1.0:6,0.5:4", replay=5)


def depth_reward(arch: Architecture) -> float:
    return 1.0 / len(arch.layers)


def other_reward(arch: Architecture) -> float:
    return 0.5


def test_a_plain_function_is_a_reward_end_to_end(tmp_path):
    search = Search.create(CONFIG, tmp_path / "run", reward=depth_reward)
    models = search.run(progress=False)
    search.close()
    assert len(models) == 10 and all(m.status == "ok" for m in models)
    for m in models:
        assert m.reward == pytest.approx(depth_reward(Architecture.parse(m.architecture)))
    assert search.best().reward == max(m.reward for m in models)


def test_a_lambda_is_a_reward_too(tmp_path):
    search = Search.create(CONFIG, tmp_path / "run", reward=lambda arch: 0.25)
    assert {m.reward for m in search.run(progress=False)} == {0.25}
    search.close()


def test_a_function_that_takes_no_architecture_fails_at_once(tmp_path):
    with pytest.raises(RewardShapeError, match="cannot be called with one architecture"):
        Search.create(CONFIG, tmp_path / "run", reward=lambda: 1.0)


def test_something_not_callable_fails_at_once():
    with pytest.raises(RewardShapeError, match="not callable"):
        as_reward(0.5)


def test_a_reward_returning_a_non_number_stops_the_search_and_records_nothing(tmp_path):
    search = Search.create(CONFIG, tmp_path / "run", reward=lambda arch: "good")
    with pytest.raises(RewardShapeError, match=r"returned 'good' \(str\)"):
        search.run(progress=False)
    assert search.store.count() == 0
    search.close()


def test_a_non_finite_reward_is_recorded_as_diverged():
    result = CallableReward(lambda arch: float("nan")).evaluate(Architecture.parse("[SM(10)]"))
    assert result.status == "diverged" and result.reward == 0.0


def test_resume_needs_the_same_reward(tmp_path):
    run = tmp_path / "run"
    search = Search.create(CONFIG, run, reward=depth_reward)
    search.run(max_models=3, progress=False)
    search.close()
    with pytest.raises(ConfigError, match="other_reward"):
        Search.resume(run, reward=other_reward)
    with pytest.raises(ConfigError, match="passed from Python"):
        Search.resume(run)  # would quietly switch to the config's reward
    search = Search.resume(run, reward=depth_reward)
    assert len(search.run(progress=False)) == 10
    search.close()


def test_a_reward_object_cannot_replace_the_configured_one_on_resume(tmp_path):
    from metaqnn.search.workers import InlineBackend
    from tests.metaqnn.search.test_search import FakeReward

    run = tmp_path / "run"
    search = Search.create(CONFIG, run, backend=InlineBackend(reward=FakeReward()))
    search.run(max_models=2, progress=False)
    search.close()
    with pytest.raises(ConfigError, match=r"not 'tests\.metaqnn\.search\.test_custom_reward"):
        Search.resume(run, reward=depth_reward)
