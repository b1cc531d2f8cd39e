import numpy as np
import pytest

from envs.cnn_design import CNNDesignEnv
from envs.layers import Architecture
from metaqnn.data import load_dataset
from metaqnn.rewards import REWARDS, RealDataReward
from metaqnn.training import TrainConfig


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def test_real_reward_is_validation_accuracy(digits):
    reward = RealDataReward(digits, TrainConfig(epochs=2, seed=1), measure_test=True)
    arch = Architecture.parse("[C(16,3,1), P(2,2), FC(64), SM(10)]")
    result = reward.evaluate(arch)
    assert result.status == "ok"
    assert result.reward == result.val_accuracy
    assert 0.3 < result.val_accuracy <= 1.0
    assert result.test_accuracy is not None
    assert result.parameters > 0 and result.flops > 0 and result.steps == 2 * (1200 // 128)
    assert reward(arch) == pytest.approx(result.reward)  # same seed, same result


def test_real_reward_drives_the_environment(digits):
    reward = RealDataReward(digits, TrainConfig(epochs=1))
    env = CNNDesignEnv("digits", reward_fn=reward)
    _, info = env.reset()
    rng = np.random.default_rng(0)
    done, total = False, 0.0
    while not done:
        _, r, done, _, info = env.step(int(rng.choice(np.flatnonzero(info["action_mask"]))))
        total += r
    assert 0.0 <= total <= 1.0


def test_registry_names_the_real_reward():
    assert REWARDS["real"] is RealDataReward
