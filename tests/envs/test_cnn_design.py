import re
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from envs.cnn_design import (
    OBSERVATION_FIELDS,
    CNNDesignEnv,
    IllegalActionError,
    IllegalActionWarning,
    NoRewardWarning,
    RewardRangeWarning,
    encode_state,
    zero_reward,
)
from envs.layers import Architecture
from envs.render import LAYER_COLOURS, STATUS_COLOURS, frame_shape
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


@pytest.mark.parametrize("render_mode", [None, "ansi", "rgb_array"])
@pytest.mark.parametrize("preset", ["digits", "mnist"])
def test_gymnasium_and_sb3_checkers_pass(preset, render_mode):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # the checkers step with random actions, which are often illegal: that warning is ours
        warnings.simplefilter("ignore", IllegalActionWarning)
        kwargs = {"space": preset, "reward_fn": CountingReward(), "render_mode": render_mode}
        env = gymnasium.make(envs.ENV_ID, **kwargs)
        gym_check_env(env.unwrapped)
        sb3_check_env(CNNDesignEnv(**kwargs))


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
    with pytest.warns(IllegalActionWarning, match=rf"illegal action {pool} \(P\(2,2\)\)"):
        obs, r, terminated, truncated, info = env.step(pool)  # pool first is illegal
    assert terminated and not truncated
    assert r == -2.0
    assert "no-pool-first" in info["invalid_action"]
    assert info["illegal_action"] is True
    assert np.array_equal(obs, obs0)
    assert reward.calls == []
    assert not env.action_masks().any()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def _illegal_action(env) -> int:
    return int(np.flatnonzero(~env.action_masks())[0])


def test_info_action_mask_equals_action_masks_in_every_case():
    """Reset, legal steps, the finishing step and an illegal step: always the same mask."""
    env = CNNDesignEnv("mnist", CountingReward())
    rng = np.random.default_rng(7)
    flags = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllegalActionWarning)
        for episode in range(40):
            _, info = env.reset()
            assert np.array_equal(info["action_mask"], env.action_masks())
            done, steps = False, 0
            while not done:
                legal = np.flatnonzero(env.action_masks())
                illegal = episode % 2 == 1 and steps == episode % 5
                action = _illegal_action(env) if illegal else int(rng.choice(legal))
                _, _, done, _, info = env.step(action)
                steps += 1
                assert info["action_mask"].dtype == bool
                assert np.array_equal(info["action_mask"], env.action_masks())
                assert not (done and info["action_mask"].any())
                flags.append((info.get("illegal_action"), illegal))
    assert all(flag is illegal for flag, illegal in flags)
    assert sum(illegal for _, illegal in flags) >= 10


def test_illegal_action_penalty_is_relative_to_the_reward_range():
    """With rewards like -log10(params) the default -1 beats every architecture; a stated
    reward_range puts the penalty one range width below the worst reward."""
    env = CNNDesignEnv("digits", lambda arch: -6.0, reward_range=(-8.0, -3.0))
    assert env.invalid_action_reward == -13.0
    env.reset()
    with pytest.warns(IllegalActionWarning):
        _, r, done, _, info = env.step(_illegal_action(env))
    assert done and r == -13.0 and info["illegal_action"] is True
    env.reset()
    _, r, *_ = env.step(env.space.terminate_action)
    assert r == -6.0 > env.invalid_action_reward
    assert CNNDesignEnv("digits", zero_reward).invalid_action_reward == -1.0  # (0, 1): as before


def test_reward_outside_the_range_warns_once():
    env = CNNDesignEnv("digits", lambda arch: -5.3)  # default reward_range (0, 1)
    with pytest.warns(RewardRangeWarning, match=r"-5\.3.*reward_range"):
        env.reset()
        env.step(env.space.terminate_action)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env.reset()
        env.step(env.space.terminate_action)


def test_illegal_action_warns_once_per_env():
    env = CNNDesignEnv("digits", zero_reward)
    with pytest.warns(IllegalActionWarning) as record:
        for _ in range(3):
            env.reset()
            env.step(_illegal_action(env))
    assert len([w for w in record if w.category is IllegalActionWarning]) == 1


def test_illegal_action_raise_names_action_and_state():
    env = CNNDesignEnv("mnist", CountingReward(), illegal_action="raise")
    env.reset()
    env.step(env.space.actions.index(envs.Conv(128, 5, 1)))
    pool = env.space.actions.index(envs.Pool(5, 3))
    fc = env.space.actions.index(envs.FullyConnected(512))
    pattern = rf"action {fc} \(FC\(512\)\) after \[C\(128,5,1\)\].*size 28"
    with pytest.raises(IllegalActionError, match=pattern) as err:
        env.step(fc)
    assert err.value.action == fc and err.value.layer == envs.FullyConnected(512)
    assert err.value.state == env.state and err.value.rules
    # the episode goes on: the state is unchanged and a legal action still works
    assert env.action_masks()[pool]
    _, _, done, _, info = env.step(pool)
    assert not done and info["illegal_action"] is False


@pytest.mark.parametrize("bad", ["ignore", "RAISE", None, -1.0, ("raise",)])
def test_bad_illegal_action_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=rf"illegal_action {re.escape(repr(bad))} .*'raise'"):
        CNNDesignEnv("digits", zero_reward, illegal_action=bad)


@pytest.mark.parametrize("bad", [(1.0, 0.0), (0.0, 0.0), (0.0, float("inf")), (0.0,), "01", None])
def test_bad_reward_range_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=rf"reward_range .*{re.escape(repr(bad))}"):
        CNNDesignEnv("digits", zero_reward, reward_range=bad)


def test_penalty_with_raise_is_a_clear_error():
    with pytest.raises(ValueError, match=r"invalid_action_reward=-2\.0 .*'raise'"):
        CNNDesignEnv("digits", zero_reward, invalid_action_reward=-2.0, illegal_action="raise")


def test_out_of_range_action_is_a_clear_error():
    env = CNNDesignEnv("digits", zero_reward)
    env.reset()
    with pytest.raises(ValueError, match="outside Discrete"):
        env.step(999)


def test_observation_encodes_the_state():
    env = CNNDesignEnv("mnist", zero_reward)
    obs, _ = env.reset()
    fields = dict(zip(OBSERVATION_FIELDS, obs, strict=True))
    assert fields["layer_type"] == 0 and fields["depth"] == 0 and fields["size"] == 28
    conv = env.space.actions.index(envs.Conv(128, 5, 1))
    obs, *_ = env.step(conv)
    fields = dict(zip(OBSERVATION_FIELDS, obs, strict=True))
    assert fields["layer_type"] == 1 and fields["depth"] == 1
    assert fields["conv_filters"] == 2 and fields["conv_kernel"] == 3
    assert np.array_equal(obs, encode_state(env.space, env.state))


@pytest.mark.parametrize("preset", ["mnist", "mnist-fc14"])
def test_observation_determines_the_mask(preset):
    """The observation is Markov: equal observations have equal action masks (with FC
    allowed up to 14x14 too: 14 is one of that space's size-bin thresholds)."""
    env = CNNDesignEnv(preset, zero_reward)
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
    env = CNNDesignEnv("digits", zero_reward, render_mode="ansi")
    env.reset()
    env.step(env.space.actions.index(envs.Conv(16, 3, 1)))
    assert env.render().startswith("[C(16,3,1)]")
    assert CNNDesignEnv("digits", zero_reward).render() is None
    with pytest.raises(ValueError, match="render_mode"):
        CNNDesignEnv("digits", zero_reward, render_mode="human")


def _pixels(frame, colour) -> np.ndarray:
    return (frame == np.array(colour, dtype=np.uint8)).all(axis=-1)


def test_render_rgb_array_draws_one_block_per_layer():
    assert "rgb_array" in CNNDesignEnv.metadata["render_modes"]
    env = CNNDesignEnv("mnist", CountingReward(), render_mode="rgb_array")
    env.reset()
    empty = env.render()
    assert empty.dtype == np.uint8 and empty.shape == frame_shape(env.space)
    assert empty.shape[0] % 16 == 0 and empty.shape[1] % 16 == 0
    assert not _pixels(empty, LAYER_COLOURS["conv"]).any()
    assert _pixels(empty[:4], STATUS_COLOURS["building"]).all()
    frames = []
    for layer in (envs.Conv(128, 5, 1), envs.Pool(2, 2)):
        env.step(env.space.actions.index(layer))
        frames.append(env.render())
    assert all(f.shape == empty.shape for f in frames)
    conv, pool = (
        _pixels(frames[1], LAYER_COLOURS["conv"]),
        _pixels(frames[1], LAYER_COLOURS["pool"]),
    )
    assert pool.any(axis=1).sum() < conv.any(axis=1).sum()  # the pool halves R: a lower block
    assert np.flatnonzero(conv.any(axis=0)).max() < np.flatnonzero(pool.any(axis=0)).min()
    env.step(env.space.terminate_action)
    final = env.render()
    assert _pixels(final, LAYER_COLOURS["softmax"]).any()
    assert _pixels(final[:4], STATUS_COLOURS["finished"]).all()
    env.reset()
    with pytest.warns(IllegalActionWarning):
        env.step(_illegal_action(env))
    assert _pixels(env.render()[:4], STATUS_COLOURS["illegal"]).all()


def test_gymnasium_make_accepts_rgb_array():
    env = gymnasium.make(
        envs.ENV_ID, space="digits", reward_fn=zero_reward, render_mode="rgb_array"
    )
    env.reset(seed=0)
    assert env.render().shape == frame_shape(env.unwrapped.space)


def test_no_reward_fn_gives_zero_and_warns_once():
    with pytest.warns(NoRewardWarning, match="reward_fn") as record:
        env = CNNDesignEnv("digits")
        for _ in range(2):
            env.reset()
            _, r, done, _, info = env.step(env.space.terminate_action)
            assert done and r == 0.0 and info["architecture"] == "[SM(10)]"
    assert len(record) == 1
    with pytest.warns(NoRewardWarning):
        gymnasium.make(envs.ENV_ID)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CNNDesignEnv("digits", reward_fn=zero_reward)
        gymnasium.make(envs.ENV_ID, reward_fn=CountingReward())


def test_docstring_leads_with_maskable_ppo_and_keeps_gymnasium_sections():
    doc = CNNDesignEnv.__doc__
    sections = ["Description", "Action Space", "Observation Space", "Starting State", "Reward",
                "Episode End", "Arguments", "Version History"]  # fmt: skip
    positions = [doc.index(f"## {name}\n") for name in sections]
    assert positions == sorted(positions)
    assert "MaskablePPO(" in doc[: positions[0]]
    arguments = doc[positions[sections.index("Arguments")] :]
    for argument in ("illegal_action", "reward_range", "rgb_array", "invalid_action_reward"):
        assert argument in arguments


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
