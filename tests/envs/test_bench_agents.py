"""``metaqnn/CNNDesignBench-v0`` keeps the contract of ``metaqnn/CNNDesign-v0``: both
environment checkers pass, stable-baselines3's ``make_vec_env`` makes it (Dummy and Subproc),
and sb3-contrib's ``MaskablePPO`` and MetaQNN's Q-learner drive it through the same interface
as the real one, the reward being the table's validation accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from envs.bench import CNNDesignBenchEnv, load_table
from metaqnn.search.agent import QLearningAgent
from tests.envs.test_bench import fake_table

BENCH_ID = "envs:metaqnn/CNNDesignBench-v0"  # imports envs in a subprocess too


@pytest.fixture
def table_path(tmp_path):
    path, _ = fake_table(tmp_path / "t.npz")
    return str(path)


def _mean_val(table_path: str, arch: str) -> float:
    table = load_table(table_path)
    return float(np.mean(table.arrays["val_accuracy"][table.row(arch)]))


@pytest.mark.parametrize("render_mode", [None, "ansi", "rgb_array"])
def test_both_checkers_pass(table_path, render_mode):
    gym_check_env(CNNDesignBenchEnv(table_path, render_mode=render_mode), skip_render_check=False)
    sb3_check_env(CNNDesignBenchEnv(table_path, render_mode=render_mode), warn=True)


@pytest.mark.parametrize("vec_env_cls", [DummyVecEnv, SubprocVecEnv])
def test_make_vec_env_with_its_defaults(table_path, vec_env_cls):
    """``make_vec_env`` asks for ``rgb_array``; episodes of random legal actions end with the
    table's reward and its info."""
    vec_env = make_vec_env(BENCH_ID, n_envs=2, seed=0, vec_env_cls=vec_env_cls,
                           env_kwargs={"table": table_path})  # fmt: skip
    try:
        vec_env.reset()
        rng = np.random.default_rng(0)
        ended = []
        for _ in range(50):
            masks = np.stack(vec_env.env_method("action_masks"))
            actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
            _, rewards, dones, infos = vec_env.step(actions)
            ended += [(r, i) for r, d, i in zip(rewards, dones, infos, strict=True) if d]
        assert len(ended) >= 4
        for reward, info in ended:
            assert reward == pytest.approx(_mean_val(table_path, info["architecture"]))
            assert info["sim_time_s"] > 0 and "test_accuracy" in info
        frames = vec_env.get_images()
        assert all(f.dtype == np.uint8 and f.ndim == 3 for f in frames)
    finally:
        vec_env.close()


def test_the_q_learner_drives_it_as_it_drives_the_real_env(table_path):
    """Same agent, same ``episode`` call as the search's: it reads ``info["action_mask"]``
    and learns from the table's rewards."""
    env = CNNDesignBenchEnv(table_path)
    agent = QLearningAgent(env.action_space.n, alpha=0.5)
    rng = np.random.default_rng(0)
    seen = {}
    for _ in range(30):
        trajectory = agent.episode(env, epsilon=1.0, rng=rng)
        reward = _mean_val(table_path, trajectory.architecture)
        seen[trajectory.architecture] = reward
        agent.update(trajectory, reward)
    assert len(seen) == len(load_table(table_path))  # 30 random episodes meet all 6
    best = max(seen, key=seen.get)
    assert agent.episode(env, epsilon=0.0, rng=rng).architecture == best


def test_maskable_ppo_never_acts_illegally_on_it(table_path):
    sb3_contrib = pytest.importorskip("sb3_contrib")
    from sb3_contrib.common.maskable.utils import get_action_masks

    vec_env = make_vec_env(BENCH_ID, n_envs=2, seed=0,
                           env_kwargs={"table": table_path, "illegal_action": "raise"})  # fmt: skip
    try:
        model = sb3_contrib.MaskablePPO(
            "MlpPolicy", vec_env, n_steps=32, batch_size=32, n_epochs=1, seed=0, device="cpu"
        )
        model.learn(total_timesteps=64)  # an illegal action would raise
        obs = vec_env.reset()
        actions, _ = model.predict(obs, action_masks=get_action_masks(vec_env))
        masks = np.stack(vec_env.env_method("action_masks"))
        assert all(m[a] for m, a in zip(masks, actions, strict=True))
    finally:
        vec_env.close()
