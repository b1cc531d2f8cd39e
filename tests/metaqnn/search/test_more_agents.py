"""Regularized evolution and Optuna's TPE (``metaqnn.search.evolution``, ``metaqnn.search.tpe``)
on the digits space with cheap synthetic rewards: exact budgets of unique architectures, one
sequence per seed, only valid architectures, mutations that stay in the space, evolution ahead
of random search where structure matters, and the one-line error without optuna."""

from __future__ import annotations

import sys
import zlib

import numpy as np
import pytest

from envs.layers import Architecture
from envs.space import get_space
from metaqnn.errors import ConfigError
from metaqnn.search.agent import trajectory_of
from metaqnn.search.baselines import AGENTS, AgentSettings, CachedReward, run_agent
from metaqnn.search.evolution import mutate, random_member, run_evolution
from metaqnn.search.tpe import legal_action, run_tpe


def hashed(arch: Architecture) -> float:
    """A fixed random score per architecture: no structure to learn."""
    return (zlib.crc32(str(arch).encode()) % 1000) / 1000


def additive(arch: Architecture) -> float:
    """A fixed random score per (position, layer), summed: similar architectures score alike."""
    return sum(
        (zlib.crc32(f"{i}:{layer}".encode()) % 1000) / 1000 - 0.5
        for i, layer in enumerate(arch.layers)
    )


def _settings(budget: int, **kw) -> AgentSettings:
    return AgentSettings(
        space=get_space("digits", **kw.pop("space", {})), schedule=f"1.0:{budget}", **kw
    )


def test_both_are_registered():
    assert AGENTS["evolution"] is run_evolution and AGENTS["tpe"] is run_tpe


@pytest.mark.parametrize("agent", ["evolution", "tpe"])
def test_budget_exact_deterministic_and_valid(agent):
    settings = _settings(30)  # evolution: 20 random, then 10 children
    space = settings.space
    a = run_agent(agent, settings, CachedReward(hashed), seed=0)
    b = run_agent(agent, settings, CachedReward(hashed), seed=0)
    c = run_agent(agent, settings, CachedReward(hashed), seed=1)
    assert len(a.architectures) == len(set(a.architectures)) == 30 and a.stopped == "budget"
    assert all(space.is_valid(Architecture.parse(t)) for t in a.architectures)
    assert a.rewards == tuple(hashed(Architecture.parse(t)) for t in a.architectures)
    assert a.agent == agent and a.illegal == 0 and a.episodes == 30 + a.repeats
    assert (a.architectures, a.rewards) == (b.architectures, b.rewards)
    assert a.architectures != c.architectures


def test_mutations_stay_in_the_space_and_differ_from_the_parent():
    settings = _settings(1)
    env, rng = settings.env(), np.random.default_rng(0)
    for _ in range(200):
        parent = random_member(env, rng)
        child = mutate(env, parent, rng)
        assert child is not None and child.architecture != parent.architecture
        assert settings.space.is_valid(Architecture.parse(child.architecture))
        assert trajectory_of(env, child.architecture).actions == child.actions
        first = next(
            t for t, (p, c) in enumerate(zip(parent.actions, child.actions, strict=False)) if p != c
        )
        assert parent.actions[:first] == child.actions[:first] and first in parent.mutable


def test_evolution_beats_random_search_where_structure_matters():
    settings = _settings(60)
    best = {
        agent: np.mean(
            [max(run_agent(agent, settings, CachedReward(additive), s).rewards) for s in range(5)]
        )
        for agent in ("evolution", "random")
    }
    assert best["evolution"] > best["random"] + 0.1


def test_runs_stop_when_the_space_is_used_up():
    """A space of a few architectures and a larger budget: repeats are free, and the runs end
    (step cap, or TPE's bound on repeats in a row) instead of looping."""
    settings = _settings(100, space={"max_depth": 1}, max_env_steps=400)
    evo = run_evolution(settings, CachedReward(hashed), 0)
    tpe = run_tpe(settings, CachedReward(hashed), 0, max_repeats=10)
    for run in (evo, tpe):
        assert run.stopped == "step cap" and run.repeats > 0
        assert run.episodes == len(run.architectures) + run.repeats
    assert evo.env_steps >= 400 and tpe.env_steps < 400  # TPE stopped on its repeat bound


def test_tpe_stops_at_its_trial_cap():
    """Repeats between new architectures never reach the in-a-row bound; the trial cap ends
    the run (TPE's cost per suggestion grows with the trials)."""
    settings = _settings(100, space={"max_depth": 1})
    capped = run_tpe(settings, CachedReward(hashed), 0, max_repeats=10_000, max_trials=30)
    assert capped.episodes == 30 and capped.stopped == "step cap"
    assert len(capped.architectures) < 100
    default = run_tpe(_settings(5), CachedReward(hashed), 0)
    assert default.episodes <= 4 * 5
    with pytest.raises(ConfigError, match="max_trials must be >= 1"):
        run_tpe(settings, CachedReward(hashed), 0, max_trials=0)


def test_legal_action_keeps_legal_choices_and_wraps_illegal_ones():
    mask = np.array([False, True, False, True, False])
    assert [legal_action(c, mask) for c in range(5)] == [1, 1, 1, 3, 1]
    with pytest.raises(ConfigError, match="no legal action"):
        legal_action(0, np.zeros(3, dtype=bool))


@pytest.mark.parametrize(
    ("kw", "match"), [({"sample": 30}, "sample <= population"), ({"tries": 0}, "tries >= 1")]
)
def test_bad_evolution_settings_are_named(kw, match):
    with pytest.raises(ConfigError, match=match):
        run_evolution(_settings(5), CachedReward(hashed), 0, **kw)


def test_missing_optuna_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna -> ImportError
    with pytest.raises(ConfigError) as err:
        run_agent("tpe", _settings(5), CachedReward(hashed), 0)
    message = str(err.value)
    assert "\n" not in message and "optuna" in message and "pip install 'metaqnn[tpe]'" in message
