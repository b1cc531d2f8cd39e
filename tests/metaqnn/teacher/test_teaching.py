import pytest
import torch

from envs.layers import Architecture
from envs.space import get_space
from gtn.teacher import GTNTeacher
from metaqnn.core.data import load_dataset
from metaqnn.rewards.gtn import GTNReward
from metaqnn.teacher.shapes import (
    GTN_LEARNER,
    fixed_learner_factory,
    load_teacher,
    pixel_range,
    space_learner_factory,
    teacher_config,
)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def _tiny_teacher(digits):
    config = teacher_config(digits, inner_steps=3, inner_batch=16, generator_hidden=32,
                            generator_noise_dim=8, generator_conv_channels=(8, 4))  # fmt: skip
    return GTNTeacher(config)


def test_teacher_is_shaped_by_the_dataset(digits):
    config = teacher_config(digits)
    assert (config.generator.channels, config.generator.image_size) == (1, 8)
    low, high = pixel_range(digits)
    assert torch.allclose(
        digits.normalize(torch.zeros(1, 1, 8, 8)), torch.full((1, 1, 8, 8), low[0])
    )
    assert torch.allclose(
        digits.normalize(torch.ones(1, 1, 8, 8)), torch.full((1, 1, 8, 8), high[0])
    )


def test_space_factory_draws_fresh_architectures(digits):
    make = space_learner_factory(get_space("digits"), digits)
    archs = {make(seed).architecture for seed in range(20)}
    assert len(archs) > 5
    a, b = make(7), make(7)
    assert a.architecture == b.architecture
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_learners_use_weight_norm_and_batch_statistics(digits):
    arch = Architecture.parse("[C(16,3,1), P(2,2), FC(64), SM(10)]")
    model = fixed_learner_factory(arch, digits, GTN_LEARNER)(0)
    names = [n for n, _ in model.named_parameters()]
    assert any("original0" in n for n in names)
    assert not list(model.buffers())  # no running statistics


def test_gtn_reward_scores_on_validation_data(digits):
    reward = GTNReward(_tiny_teacher(digits), digits, val_size=100)
    arch = Architecture.parse("[C(16,3,1), P(2,2), FC(64), SM(10)]")
    result = reward.evaluate(arch)
    assert result.status == "ok" and result.steps == 3
    assert 0.0 <= result.reward <= 1.0 and result.reward == result.val_accuracy
    assert reward(arch) == result.reward  # same seed, same reward
    assert len(reward.val) == 100


@pytest.mark.parametrize("curriculum", ["full", "none"])
def test_materialized_batches_teach_exactly_like_generating_them(digits, curriculum):
    config = teacher_config(digits, inner_steps=3, inner_batch=16, generator_hidden=32,
                            generator_noise_dim=8, generator_conv_channels=(8, 4),
                            curriculum=curriculum)  # fmt: skip
    teacher = GTNTeacher(config)
    arch = Architecture.parse("[C(16,3,1), P(2,2), FC(64), SM(10)]")
    factory = fixed_learner_factory(arch, digits)
    a = teacher.teach(factory(0), seed=5)
    b = teacher.teach(factory(0), batches=teacher.materialize(seed=5))
    c = teacher.teach(factory(0), batches=teacher.materialize(seed=6))
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    differs = any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters(),
                                                            strict=True))  # fmt: skip
    assert differs == (curriculum == "none")  # the full curriculum's inputs are learned, fixed
    with pytest.raises(ValueError, match="2 materialized batches for 3 steps"):
        teacher.teach(factory(0), batches=teacher.materialize(2, seed=5))


def test_gtn_reward_over_seeds_vectorized_equals_sequential(digits):
    teacher = _tiny_teacher(digits)
    arch = Architecture.parse("[C(8,3,1), P(2,2), FC(16), SM(10)]")
    fast = GTNReward(teacher, digits, seed=3, seeds=3, vectorize=True).evaluate(arch)
    slow = GTNReward(teacher, digits, seed=3, seeds=3, vectorize=False).evaluate(arch)
    one = GTNReward(teacher, digits, seed=3).evaluate(arch)
    assert fast.reward == pytest.approx(slow.reward, abs=1e-6)
    assert fast.status == "ok" and 0.0 <= fast.reward <= 1.0
    singles = [GTNReward(teacher, digits, seed=s).evaluate(arch).reward for s in (3, 4, 5)]
    assert one.reward == singles[0]
    assert fast.reward == pytest.approx(sum(singles) / 3, abs=1e-6)


def test_gtn_reward_rejects_a_bad_seed_count(digits):
    with pytest.raises(ValueError, match="seeds=0"):
        GTNReward(_tiny_teacher(digits), digits, seeds=0)


def test_gtn_reward_fast_paths_keep_the_reward(digits):
    teacher = _tiny_teacher(digits)
    arch = Architecture.parse("[C(8,3,1), P(2,2), FC(16), SM(10)]")
    plain = GTNReward(teacher, digits, seed=2).evaluate(arch).reward
    nhwc = GTNReward(teacher, digits, seed=2, channels_last=True).evaluate(arch).reward
    bf16 = GTNReward(teacher, digits, seed=2, precision="bf16").evaluate(arch)
    assert nhwc == pytest.approx(plain, abs=1e-6)
    assert bf16.status == "ok" and bf16.reward == pytest.approx(plain, abs=0.05)
    with pytest.raises(ValueError, match="precision='fp8'"):
        GTNReward(teacher, digits, precision="fp8")


def test_load_teacher_fresh_or_from_a_run(digits, tmp_path):
    fresh = load_teacher(digits)
    assert isinstance(fresh, GTNTeacher) and fresh.config == teacher_config(digits)
    with pytest.raises((ValueError, FileNotFoundError)):
        load_teacher(digits, str(tmp_path / "no-run"))


def test_teach_many_leaves_each_learner_as_teach_does(digits):
    teacher = _tiny_teacher(digits)
    factory = fixed_learner_factory(Architecture.parse("[C(8,3,1), FC(16), SM(10)]"), digits)
    together = teacher.teach_many([factory(s) for s in (0, 1)], seed=4)
    for seed, learner in zip((0, 1), together, strict=True):
        alone = teacher.teach(factory(seed), seed=4)
        fresh = next(factory(seed).parameters())
        assert not torch.equal(next(learner.parameters()), fresh)  # it trained
        for (name, a), b in zip(learner.named_parameters(), alone.parameters(), strict=True):
            assert torch.allclose(a, b, atol=1e-5), name
