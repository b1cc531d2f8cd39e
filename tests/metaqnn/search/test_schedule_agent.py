import numpy as np
import pytest

from envs.cnn_design import CNNDesignEnv
from envs.layers import Architecture
from metaqnn.errors import ConfigError
from metaqnn.search.agent import QLearningAgent, Trajectory, Transition, trajectory_of
from metaqnn.search.replay import ReplayMemory
from metaqnn.search.schedule import PAPER_STAGES, EpsilonSchedule


# ------------------------------------------------------------------ schedule
def test_paper_schedule_is_metaqnns():
    s = EpsilonSchedule.parse("paper")
    assert s.stages == PAPER_STAGES and s.total == 2700
    assert s.epsilon(0) == 1.0 and s.epsilon(1499) == 1.0 and s.epsilon(1500) == 0.9
    assert s.epsilon(1800) == 0.6 and s.epsilon(2699) == 0.1 and s.epsilon(2700) is None
    assert s.stage_index(1600) == 2


@pytest.mark.parametrize(
    ("spec", "total", "first"),
    [("quick", 54, (1.0, 30)), ("0.1", 270, (1.0, 150)), ("1.0:5,0.5:2", 7, (1.0, 5))],
)
def test_schedule_forms(spec, total, first):
    s = EpsilonSchedule.parse(spec)
    assert s.total == total and s.stages[0] == first
    assert EpsilonSchedule.parse(s.to_spec()) == s


@pytest.mark.parametrize("spec", ["fast", "-1", "0", "1.5:3", "1.0:0", "1.0:x", "nan"])
def test_bad_schedules_name_the_value(spec):
    with pytest.raises(ConfigError, match=r"schedule|stage"):
        EpsilonSchedule.parse(spec)


# ------------------------------------------------------------------ agent
def _two_step():
    """obs A --0--> B --1--> terminal (legal at B: 1 and 2)."""
    return Trajectory("x", (Transition((0,), 0, (1,), (1, 2), False),
                            Transition((1,), 1, (2,), (), True)))  # fmt: skip


def test_update_is_metaqnns_rule_in_reverse_order():
    agent = QLearningAgent(3, alpha=0.5, gamma=1.0, q_init=0.5)
    agent.values((1,))[2] = 0.9  # a better legal action at B
    agent.update(_two_step(), 1.0)
    assert agent.values((1,))[1] == pytest.approx(0.5 * 0.5 + 0.5 * 1.0)  # towards the reward
    # then A's action towards the best legal Q at B, which is 0.9 (action 2), read after B's
    # update (reverse order): max(0.75, 0.9) = 0.9
    assert agent.values((0,))[0] == pytest.approx(0.5 * 0.5 + 0.5 * 0.9)
    agent.values((1,))[1] = 5.0
    agent.values((1,))[0] = 99.0  # action 0 is illegal at B: the max ignores it
    agent.update(_two_step(), 0.0)  # B's action 1: 0.5 * 5 + 0.5 * 0 = 2.5
    assert agent.values((0,))[0] == pytest.approx(0.5 * 0.7 + 0.5 * 2.5)


def test_epsilon_greedy_respects_the_mask():
    agent = QLearningAgent(5)
    agent.values((0,))[:] = [9, 0, 3, 0, 1]
    mask = np.array([False, True, True, False, True])
    rng = np.random.default_rng(0)
    assert {agent.act((0,), mask, 0.0, rng) for _ in range(20)} == {2}
    assert {agent.act((0,), mask, 1.0, rng) for _ in range(200)} == {1, 2, 4}


def test_episodes_build_legal_architectures_and_rebuild():
    env = CNNDesignEnv("digits")
    agent = QLearningAgent(env.action_space.n)
    rng = np.random.default_rng(1)
    for _ in range(20):
        traj = agent.episode(env, 1.0, rng)
        env.space.validate(Architecture.parse(traj.architecture))
        assert traj.transitions[-1].done and not any(t.done for t in traj.transitions[:-1])
        assert trajectory_of(env, traj.architecture) == traj


def test_trajectory_of_rejects_architectures_outside_the_space():
    env = CNNDesignEnv("digits")
    with pytest.raises(ConfigError, match=r"not"):
        trajectory_of(env, "[C(512,3,1), SM(10)]")


def test_agent_state_round_trip():
    env = CNNDesignEnv("digits")
    agent = QLearningAgent(env.action_space.n, alpha=0.1)
    rng = np.random.default_rng(2)
    for _ in range(5):
        agent.update(agent.episode(env, 1.0, rng), float(rng.random()))
    back = QLearningAgent.from_state_dict(agent.state_dict())
    assert back.q.keys() == agent.q.keys() and back.alpha == 0.1
    assert all(np.array_equal(back.q[k], agent.q[k]) for k in agent.q)


def test_replay_draws_uniformly_and_round_trips():
    env = CNNDesignEnv("digits")
    memory = ReplayMemory(lambda arch: trajectory_of(env, arch))
    agent = QLearningAgent(env.action_space.n)
    rng = np.random.default_rng(3)
    for _ in range(4):
        memory.add(agent.episode(env, 1.0, rng), 1.0)
    before = {k: v.copy() for k, v in agent.q.items()}
    memory.replay(agent, 50, rng)
    assert any(not np.array_equal(before.get(k, 0.5), v) for k, v in agent.q.items())
    other = ReplayMemory(lambda arch: trajectory_of(env, arch))
    other.load_state_dict(memory.state_dict())
    assert other.entries == memory.entries
    assert other.trajectory(memory.entries[0][0]) == memory.trajectory(memory.entries[0][0])
