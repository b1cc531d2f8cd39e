import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from envs.cnn_design import OBSERVATION_FIELDS, CNNDesignEnv, encode_state
from envs.layers import Architecture
from envs.space import PRESETS


class CountingReward:
    """A deterministic, cheap reward that is clearly not accuracy: shallow nets score high."""

    def __init__(self):
        self.calls = []

    def __call__(self, arch: Architecture) -> float:
        self.calls.append(arch)
        return 1.0 / len(arch)


def _masked_episode(env, rng):
    obs, info = env.reset(seed=0)
    observations, total, done = [obs], 0.0, False
    while not done:
        action = int(rng.choice(np.flatnonzero(env.action_masks())))
        obs, reward, done, truncated, info = env.step(action)
        assert not truncated
        observations.append(obs)
        total += reward
    return observations, total, info


@pytest.mark.parametrize("preset", ["digits", "mnist"])
def test_gymnasium_and_sb3_checkers_pass(preset):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gymnasium.make(envs.ENV_ID, space=preset, reward_fn=CountingReward())
        gym_check_env(env.unwrapped)
        sb3_check_env(CNNDesignEnv(preset, reward_fn=CountingReward()))


def test_registered_id_makes_the_env():
    env = gymnasium.make(envs.ENV_ID, space="mnist", reward_fn=CountingReward())
    assert env.action_space.n == 20
    obs, info = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    assert info["action_mask"].dtype == bool


def test_same_seed_same_episode():
    a = _masked_episode(CNNDesignEnv("mnist", CountingReward()), np.random.default_rng(5))
    b = _masked_episode(CNNDesignEnv("mnist", CountingReward()), np.random.default_rng(5))
    assert all(np.array_equal(x, y) for x, y in zip(a[0], b[0], strict=True))
    assert a[1] == b[1] and a[2]["architecture"] == b[2]["architecture"]


def test_reward_only_at_the_end_on_a_valid_architecture():
    reward = CountingReward()
    env = CNNDesignEnv("mnist", reward)
    rng = np.random.default_rng(0)
    for _ in range(30):
        env.reset()
        done, rewards = False, []
        while not done:
            action = int(rng.choice(np.flatnonzero(env.action_masks())))
            _, r, done, _, info = env.step(action)
            rewards.append(r)
        assert all(r == 0.0 for r in rewards[:-1])
        arch = Architecture.parse(info["architecture"])
        assert rewards[-1] == pytest.approx(1.0 / len(arch))
        assert PRESETS["mnist"].is_valid(arch)
        assert reward.calls[-1] == arch
    assert len(reward.calls) == 30


def test_invalid_action_ends_episode_with_penalty_and_reason():
    reward = CountingReward()
    env = CNNDesignEnv("mnist", reward, invalid_action_reward=-2.0)
    obs0, _ = env.reset()
    pool = env.space.actions.index(envs.Pool(2, 2))
    obs, r, terminated, truncated, info = env.step(pool)  # pool first is illegal
    assert terminated and not truncated
    assert r == -2.0
    assert "no-pool-first" in info["invalid_action"]
    assert np.array_equal(obs, obs0)
    assert reward.calls == []
    assert not env.action_masks().any()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_out_of_range_action_is_a_clear_error():
    env = CNNDesignEnv("digits")
    env.reset()
    with pytest.raises(ValueError, match="outside Discrete"):
        env.step(999)


def test_observation_encodes_the_state():
    env = CNNDesignEnv("mnist")
    obs, _ = env.reset()
    fields = dict(zip(OBSERVATION_FIELDS, obs, strict=True))
    assert fields["layer_type"] == 0 and fields["depth"] == 0 and fields["size"] == 28
    conv = env.space.actions.index(envs.Conv(128, 5, 1))
    obs, *_ = env.step(conv)
    fields = dict(zip(OBSERVATION_FIELDS, obs, strict=True))
    assert fields["layer_type"] == 1 and fields["depth"] == 1
    assert fields["conv_filters"] == 2 and fields["conv_kernel"] == 3
    assert np.array_equal(obs, encode_state(env.space, env.state))


def test_observation_determines_the_mask():
    """The observation is Markov: equal observations have equal action masks."""
    env = CNNDesignEnv("mnist")
    rng = np.random.default_rng(3)
    masks = {}
    for _ in range(200):
        obs, info = env.reset()
        done = False
        while not done:
            key = tuple(obs)
            assert np.array_equal(masks.setdefault(key, info["action_mask"]), info["action_mask"])
            action = int(rng.choice(np.flatnonzero(info["action_mask"])))
            obs, _, done, _, info = env.step(action)


def test_render_ansi_shows_the_architecture_so_far():
    env = CNNDesignEnv("digits", render_mode="ansi")
    env.reset()
    env.step(env.space.actions.index(envs.Conv(16, 3, 1)))
    assert env.render().startswith("[C(16,3,1)]")
    assert CNNDesignEnv("digits").render() is None
    with pytest.raises(ValueError, match="render_mode"):
        CNNDesignEnv("digits", render_mode="human")


def test_no_reward_fn_gives_zero():
    env = CNNDesignEnv("digits")
    env.reset()
    _, r, done, _, info = env.step(env.space.terminate_action)
    assert done and r == 0.0 and info["architecture"] == "[SM(10)]"


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["PPO", "DQN"])
def test_sb3_agents_learn(algo):
    import stable_baselines3

    env = CNNDesignEnv("digits", reward_fn=CountingReward())
    cls = getattr(stable_baselines3, algo)
    kwargs = {"n_steps": 64, "batch_size": 32} if algo == "PPO" else {"learning_starts": 50}
    model = cls("MlpPolicy", env, seed=0, device="cpu", **kwargs)
    model.learn(total_timesteps=300)
    obs, _ = env.reset()
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(int(action))
