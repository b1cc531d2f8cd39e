import numpy as np
import pytest

from envs.cnn_design import CNNDesignEnv
from envs.layers import Architecture
from metaqnn.core.data import load_dataset
from metaqnn.core.training import TrainConfig
from metaqnn.errors import CheckpointError, ConfigError
from metaqnn.rewards.real import RealDataReward
from metaqnn.rewards.spec import REWARDS, RewardSpec, build_reward


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


def test_registry_builds_rewards_from_specs(tmp_path):
    assert sorted(REWARDS) == ["gtn", "real"]
    reward = build_reward(RewardSpec(name="real", dataset="digits", epochs=2))
    assert isinstance(reward, RealDataReward) and reward.train_config.epochs == 2
    with pytest.raises(ConfigError, match="unknown reward 'fast'"):
        build_reward(RewardSpec(name="fast"))
    with pytest.raises(ConfigError, match="--gtn-checkpoint"):
        build_reward(RewardSpec(name="gtn"))
    with pytest.raises(CheckpointError, match="missing"):
        build_reward(RewardSpec(name="gtn", gtn_checkpoint=str(tmp_path / "missing")))
