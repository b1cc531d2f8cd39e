"""The agents compared with MetaQNN's Q-learner: shared reward cache, per-run budget, random
search, the Q-learning driver (same sequence as the search loop), the SB3 driver and the masked
one (sb3-contrib's MaskablePPO)."""

from __future__ import annotations

import sys
import zlib

import numpy as np
import pytest

from envs.layers import Architecture
from envs.space import get_space
from metaqnn.errors import ConfigError
from metaqnn.rewards.spec import RewardSpec
from metaqnn.search.baselines import (
    AGENTS,
    AgentRun,
    AgentSettings,
    BudgetExhaustedError,
    CachedReward,
    RunRecorder,
    run_agent,
)
from metaqnn.search.loop import Search, SearchConfig
from metaqnn.search.workers import InlineBackend


class CountingFn:
    """A deterministic ``Architecture -> float`` that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, arch: Architecture) -> float:
        self.calls += 1
        return (zlib.crc32(str(arch).encode()) % 1000) / 1000


def _settings(schedule: str = "1.0:6,0.5:4", **kw) -> AgentSettings:
    return AgentSettings(space=get_space("digits"), schedule=schedule, replay=20, **kw)


# ------------------------------------------------------------------ reward cache and budget
def test_cache_computes_each_architecture_once_and_round_trips(tmp_path):
    fn = CountingFn()
    cache = CachedReward(fn, tmp_path / "r.json")
    a, b = Architecture.parse("[C(16,3,1), SM(10)]"), Architecture.parse("[SM(10)]")
    assert cache(a) == cache(a) == fn(a) and cache(b) == fn(b)
    assert (cache.computed, cache.hits, len(cache)) == (2, 1, 2) and a in cache
    cache.save()
    again = CachedReward(fn, tmp_path / "r.json")
    calls = fn.calls
    assert again(a) == cache(a) and again.computed == 0 and fn.calls == calls


def test_recorder_counts_repeats_and_stops_at_the_budget():
    cache = CachedReward(CountingFn())
    rec = RunRecorder(cache, budget=2)
    a, b, c = (Architecture.parse(t) for t in ("[SM(10)]", "[GAP, SM(10)]", "[C(16,1,1), SM(10)]"))
    rec(a), rec(a), rec(b)
    assert rec.architectures == [str(a), str(b)] and rec.repeats == 1 and rec.finished == 3
    assert rec.exhausted and rec(b) == cache(b)  # a repeat is free even after the budget
    with pytest.raises(BudgetExhaustedError, match=r"budget of 2.*C\(16,1,1\)"):
        rec(c)


@pytest.mark.parametrize("budget", [0, -1, 1.5, True])
def test_bad_budget_is_named(budget):
    with pytest.raises(ConfigError, match="budget"):
        RunRecorder(CachedReward(CountingFn()), budget)


def test_unknown_agent_is_named():
    with pytest.raises(ConfigError, match="unknown agent 'sac'"):
        run_agent("sac", _settings(), CachedReward(CountingFn()), 0)


# ------------------------------------------------------------------ AgentRun
def test_curves_and_top_mean():
    run = AgentRun("x", 0, ("a", "b", "c", "d"), (0.2, 0.5, 0.1, 0.4), 4, 0, 0, 8, 1.0, 0.5,
                   "budget")  # fmt: skip
    assert run.best_so_far().tolist() == [0.2, 0.5, 0.5, 0.5]
    assert run.rolling_mean(2) == pytest.approx([0.2, 0.35, 0.3, 0.25])
    assert run.top_mean(2) == pytest.approx(0.45) and run.top_mean(10) == pytest.approx(0.3)
    assert AgentRun.from_dict(run.to_dict()) == run
    with pytest.raises(ConfigError, match="window"):
        run.rolling_mean(0)


# ------------------------------------------------------------------ agents
def test_qlearning_samples_exactly_as_the_search_loop(tmp_path):
    """Same seed, same reward: the driver and :class:`Search` evaluate the same sequence."""
    fn = CountingFn()
    ours = run_agent("qlearning", _settings("1.0:8,0.5:6,0.1:6"), CachedReward(fn), seed=3)
    config = SearchConfig(reward=RewardSpec(dataset="digits"), schedule="1.0:8,0.5:6,0.1:6",
                          replay=20, seed=3)  # fmt: skip
    search = Search.create(config, tmp_path / "s", backend=InlineBackend(reward=CachedReward(fn)))
    models = search.run(progress=False)
    search.close()
    assert list(ours.architectures) == [m.architecture for m in models]
    assert list(ours.rewards) == [m.reward for m in models]
    assert ours.repeats == search.cache_hits and ours.episodes == search.samples
    assert list(ours.epsilons) == [m.epsilon for m in models] and ours.stopped == "budget"


@pytest.mark.parametrize("agent", ["qlearning", "random"])
def test_masked_agents_spend_the_budget_deterministically(agent):
    settings = _settings()
    space = settings.space
    a = run_agent(agent, settings, CachedReward(CountingFn()), seed=0)
    b = run_agent(agent, settings, CachedReward(CountingFn()), seed=0)
    c = run_agent(agent, settings, CachedReward(CountingFn()), seed=1)
    assert len(a.architectures) == len(set(a.architectures)) == settings.budget == 10
    assert all(space.is_valid(Architecture.parse(t)) for t in a.architectures)
    assert a.illegal == 0 and a.episodes == 10 + a.repeats
    assert a.architectures == b.architectures and a.architectures != c.architectures


def test_step_cap_stops_a_run_short():
    run = run_agent("random", _settings(max_env_steps=3), CachedReward(CountingFn()), seed=0)
    assert run.stopped == "step cap" and len(run.rewards) < 10 and run.env_steps >= 3


def test_shared_cache_saves_computation_not_budget():
    fn, settings = CountingFn(), _settings()
    cache = CachedReward(fn)
    first = run_agent("random", settings, cache, seed=0)
    computed = cache.computed
    second = run_agent("random", settings, cache, seed=0)  # the same architectures again
    assert second.architectures == first.architectures and len(second.rewards) == 10
    assert cache.computed == computed and fn.calls == computed


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["ppo", "a2c", "dqn"])
def test_sb3_agent_spends_the_budget_and_counts_illegal_episodes(agent):
    settings = _settings("1.0:8", max_env_steps=3_000)
    a = run_agent(agent, settings, CachedReward(CountingFn()), seed=0)
    b = run_agent(agent, settings, CachedReward(CountingFn()), seed=0)
    assert a.stopped == "budget" and len(a.architectures) == len(set(a.architectures)) == 8
    assert all(settings.space.is_valid(Architecture.parse(t)) for t in a.architectures)
    # every episode either built something (new or repeated) or broke a rule
    assert a.episodes == 8 + a.repeats + a.illegal and a.illegal > 0
    assert a.architectures == b.architectures and a.illegal == b.illegal


# ------------------------------------------------------------------ masked SB3 agent
def _tiny_settings(schedule: str = "1.0:12", **kw) -> AgentSettings:
    """16 architectures, 6 actions of which 3 are illegal at the start: MaskablePPO repeats
    itself and trains (16-step rollouts) before it finds 12 unique ones."""
    space = get_space("digits", max_depth=3, conv_filters=(8,), conv_kernels=(3,), fc_widths=(16,))
    overrides = {"maskable_ppo": {"n_steps": 16, "batch_size": 16, "n_epochs": 2}}
    return AgentSettings(space=space, schedule=schedule, max_env_steps=2_000,
                         sb3_overrides=overrides, **kw)  # fmt: skip


def test_maskable_ppo_takes_only_legal_actions_and_spends_the_budget():
    settings = _tiny_settings()
    a = run_agent("maskable_ppo", settings, CachedReward(CountingFn()), seed=0)
    b = run_agent("maskable_ppo", settings, CachedReward(CountingFn()), seed=0)
    assert a.stopped == "budget" and len(a.architectures) == len(set(a.architectures)) == 12
    assert all(settings.space.is_valid(Architecture.parse(t)) for t in a.architectures)
    assert a.illegal == 0 and a.episodes == 12 + a.repeats
    assert a.env_steps > 16  # past the first rollout: it learned with the masks too
    assert a.architectures == b.architectures and a.env_steps == b.env_steps


def test_missing_sb3_contrib_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sb3_contrib", None)  # import sb3_contrib -> ImportError
    with pytest.raises(ConfigError, match=r"maskable_ppo.*pip install 'metaqnn\[rl\]'") as err:
        run_agent("maskable_ppo", _tiny_settings(), CachedReward(CountingFn()), seed=0)
    assert "\n" not in str(err.value)


def test_registry_holds_every_agent():
    assert set(AGENTS) == {
        "qlearning",
        "random",
        "evolution",
        "tpe",
        "ppo",
        "a2c",
        "dqn",
        "maskable_ppo",
    }
    assert np.all([callable(fn) for fn in AGENTS.values()])
