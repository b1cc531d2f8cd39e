"""``metaqnn/CNNDesign-v0`` through stable-baselines3's ``make_vec_env``, as a new user makes it.

``make_vec_env`` asks for ``render_mode="rgb_array"`` by default. ``SubprocVecEnv`` builds each
environment in a fresh process (forkserver), where the id is registered only once ``envs`` is
imported there: ``"envs:metaqnn/CNNDesign-v0"`` (Gymnasium's ``module:id`` form) imports it,
and so does unpickling an ``env_kwargs`` value defined in a module that imports ``envs`` (the
reward here). Everything in ``env_kwargs`` must pickle. Masked agents (sb3-contrib's
``MaskablePPO``) read the masks with ``env_method("action_masks")``, as these loops do.
"""

import warnings

import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

import envs
from envs.cnn_design import IllegalActionWarning, NoRewardWarning
from envs.layers import Architecture
from envs.render import frame_shape

VEC_ENV_CLASSES = [DummyVecEnv, SubprocVecEnv]
#: The id that imports ``envs`` first, wherever it is made (a subprocess included).
IMPORTING_ID = f"envs:{envs.ENV_ID}"


def inverse_length(architecture: Architecture) -> float:
    """A cheap reward in (0, 1]: shorter networks score higher."""
    return 1.0 / len(architecture)


def _masks(vec_env: VecEnv) -> np.ndarray:
    return np.stack(vec_env.env_method("action_masks"))


def _play(vec_env: VecEnv, episodes: int, seed: int = 0) -> list[tuple[float, dict]]:
    """Random legal actions until ``episodes`` episodes have ended; (reward, info) of each end.

    After every step the info's mask of an unfinished episode equals ``action_masks()``."""
    rng = np.random.default_rng(seed)
    obs = vec_env.reset()
    assert obs.shape == (vec_env.num_envs, len(envs.cnn_design.OBSERVATION_FIELDS))
    ends = []
    while len(ends) < episodes:
        masks = _masks(vec_env)
        assert masks.dtype == bool and masks.any(axis=1).all()
        actions = np.array([rng.choice(np.flatnonzero(mask)) for mask in masks])
        obs, rewards, dones, infos = vec_env.step(actions)
        assert all(vec_env.observation_space.contains(o) for o in obs)
        after = _masks(vec_env)
        for i, (done, info) in enumerate(zip(dones, infos, strict=True)):
            assert info["illegal_action"] is False
            if done:  # auto-reset: the info is the finished episode's, the env a new one's
                assert not info["action_mask"].any()
                ends.append((float(rewards[i]), info))
            else:
                assert np.array_equal(info["action_mask"], after[i])
    return ends


@pytest.mark.parametrize(
    ("vec_env_cls", "env_id"),
    [(DummyVecEnv, envs.ENV_ID), (DummyVecEnv, IMPORTING_ID), (SubprocVecEnv, IMPORTING_ID)],
)
def test_make_vec_env_with_its_defaults(vec_env_cls, env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoRewardWarning)  # no reward_fn: a warning, not an error
        vec_env = make_vec_env(env_id, n_envs=2, seed=0, vec_env_cls=vec_env_cls)
    try:
        assert vec_env.get_attr("render_mode") == ["rgb_array", "rgb_array"]
        ends = _play(vec_env, episodes=4)
        assert all(reward == 0.0 for reward, _ in ends)
        frames = vec_env.get_images()
        shape = frame_shape(envs.get_space("digits"))
        assert [f.shape for f in frames] == [shape, shape]
        assert all(f.dtype == np.uint8 for f in frames)
    finally:
        vec_env.close()


@pytest.mark.parametrize("vec_env_cls", VEC_ENV_CLASSES)
def test_make_vec_env_with_env_kwargs(vec_env_cls):
    env_kwargs = {
        "space": "mnist",
        "reward_fn": inverse_length,
        "reward_range": (0.0, 1.0),
        "illegal_action": "penalize",
    }
    vec_env = make_vec_env(
        envs.ENV_ID, n_envs=2, seed=1, vec_env_cls=vec_env_cls, env_kwargs=env_kwargs
    )
    try:
        assert vec_env.action_space.n == 20
        ends = _play(vec_env, episodes=6, seed=1)
        for reward, info in ends:
            assert reward == pytest.approx(inverse_length(Architecture.parse(info["architecture"])))
            assert info["episode"]["r"] == pytest.approx(reward, abs=1e-5)  # Monitor rounds
        frame = vec_env.render()  # DummyVecEnv and SubprocVecEnv tile the frames
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    finally:
        vec_env.close()


@pytest.mark.parametrize("vec_env_cls", VEC_ENV_CLASSES)
def test_illegal_action_through_a_vec_env_is_flagged(vec_env_cls):
    env_kwargs = {"reward_fn": inverse_length, "render_mode": None}
    vec_env = make_vec_env(envs.ENV_ID, n_envs=2, vec_env_cls=vec_env_cls, env_kwargs=env_kwargs)
    try:
        assert vec_env.get_attr("render_mode") == [None, None]
        vec_env.reset()
        masks = _masks(vec_env)
        actions = np.array([np.flatnonzero(~mask)[0] for mask in masks])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", IllegalActionWarning)
            _, rewards, dones, infos = vec_env.step(actions)
        assert dones.all() and (rewards == -1.0).all()
        for info in infos:
            assert info["illegal_action"] is True and "invalid_action" in info
            assert not info["action_mask"].any()
        assert _masks(vec_env).any(axis=1).all()  # reset for the next episode
    finally:
        vec_env.close()


def test_maskable_ppo_reads_the_masks_and_never_acts_illegally():
    """The class docstring's example, on a vec env: with ``illegal_action="raise"`` any illegal
    action would stop learning, and the masks sb3-contrib reads are ``action_masks()``."""
    sb3_contrib = pytest.importorskip("sb3_contrib")
    from sb3_contrib.common.maskable.utils import get_action_masks

    env_kwargs = {"reward_fn": inverse_length, "illegal_action": "raise"}
    vec_env = make_vec_env(envs.ENV_ID, n_envs=2, seed=0, env_kwargs=env_kwargs)
    try:
        vec_env.reset()
        assert np.array_equal(get_action_masks(vec_env), _masks(vec_env))
        model = sb3_contrib.MaskablePPO(
            "MlpPolicy", vec_env, n_steps=32, batch_size=32, n_epochs=1, seed=0, device="cpu"
        )
        model.learn(total_timesteps=64)
        obs = vec_env.reset()
        actions, _ = model.predict(obs, action_masks=get_action_masks(vec_env))
        assert all(mask[a] for mask, a in zip(_masks(vec_env), actions, strict=True))
    finally:
        vec_env.close()
