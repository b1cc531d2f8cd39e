import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from metaqnn.errors import ConfigError
from metaqnn.evaluation.attacks import (
    ATTACKS,
    AttackConfig,
    get_attack,
    kurakin_steps,
    least_likely_class,
    run_attack,
)
from metaqnn.evaluation.pixels import PixelModel, accuracy


def _linear_model() -> tuple[PixelModel, torch.Tensor, torch.Tensor]:
    """A linear softmax classifier on 1x2x2 images, behind a normalisation."""
    linear = nn.Linear(4, 3)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, -2.0, 0.5, 0.0],
                                          [-1.0, 1.0, 2.0, -0.5],
                                          [0.3, 0.2, -1.0, 1.5]]))  # fmt: skip
        linear.bias.copy_(torch.tensor([0.1, -0.2, 0.05]))
    return (
        PixelModel(nn.Sequential(nn.Flatten(), linear), (0.4,), (0.2,)),
        linear.weight,
        linear.bias,
    )


def test_fgsm_on_a_linear_model_equals_the_closed_form():
    model, weight, bias = _linear_model()
    gen = torch.Generator().manual_seed(0)
    x = 0.2 + 0.6 * torch.rand(16, 1, 2, 2, generator=gen)  # (16, 1, 2, 2) inside (0.2, 0.8)
    y = torch.randint(0, 3, (16,), generator=gen)
    eps = 0.1
    z = (x.flatten(1) - 0.4) / 0.2  # (16, 4) normalised
    p = torch.softmax(z @ weight.T + bias, dim=1)  # (16, 3)
    grad = (p - F.one_hot(y, 3).float()) @ weight / 0.2  # (16, 4): dJ/dx through the norm
    expected = (x.flatten(1) + eps * grad.sign()).clamp(0, 1).view_as(x)
    adv = run_attack("fgsm", model, x, y, AttackConfig(epsilon=eps))
    torch.testing.assert_close(adv, expected)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_epsilon_zero_changes_nothing(name, trained):
    x, y = trained.pixels[:50], trained.labels[:50]
    adv = run_attack(name, trained.model, x, y, AttackConfig(epsilon=0.0))
    assert torch.equal(adv, x)


@pytest.mark.parametrize("name", list(ATTACKS))
@pytest.mark.parametrize("eps", [2 / 255, 0.1])
def test_every_attack_stays_in_its_ball_and_in_pixel_range(name, eps, trained):
    x, y = trained.pixels[:60], trained.labels[:60]
    config = AttackConfig(epsilon=eps, steps=5) if name != "fgsm" else AttackConfig(epsilon=eps)
    adv = run_attack(name, trained.model, x, y, config, batch_size=25, seed=3)
    assert adv.shape == x.shape
    assert (adv - x).abs().max() <= eps + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    assert (adv != x).any()  # it did perturb


def test_least_likely_target_is_the_argmin(trained):
    x = trained.pixels[:40]
    with torch.no_grad():
        probs = torch.softmax(trained.model(x), dim=1)  # (40, 10)
    assert torch.equal(least_likely_class(trained.model, x), probs.argmin(dim=1))


def test_least_likely_attack_moves_toward_its_target(trained):
    x, y = trained.pixels[:40], trained.labels[:40]
    target = least_likely_class(trained.model, x)
    adv = run_attack("ll", trained.model, x, y, AttackConfig(epsilon=16 / 255))
    with torch.no_grad():
        before = F.cross_entropy(trained.model(x), target)
        after = F.cross_entropy(trained.model(adv), target)
    assert after < before


def test_iterative_beats_fast_at_the_same_epsilon(trained):
    x, y = trained.pixels[:200], trained.labels[:200]
    config = AttackConfig(epsilon=16 / 255)
    fast = accuracy(trained.model, run_attack("fgsm", trained.model, x, y, config), y)
    iterative = accuracy(trained.model, run_attack("bim", trained.model, x, y, config), y)
    assert iterative < fast < accuracy(trained.model, x, y)


def test_attacks_leave_the_model_untouched(trained):
    model = trained.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    try:
        for name in ATTACKS:
            run_attack(name, model, trained.pixels[:20], trained.labels[:20],
                       AttackConfig(epsilon=0.05, steps=2))  # fmt: skip
        assert model.training
        assert all(p.requires_grad and p.grad is None for p in model.parameters())
    finally:
        model.eval()
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_batching_does_not_change_a_deterministic_attack(trained):
    x, y = trained.pixels[:30], trained.labels[:30]
    config = AttackConfig(epsilon=0.05)
    small = run_attack("bim", trained.model, x, y, config, batch_size=7)
    torch.testing.assert_close(small, run_attack("bim", trained.model, x, y, config, batch_size=30))


def test_pgd_is_seeded(trained):
    x, y = trained.pixels[:20], trained.labels[:20]
    config = AttackConfig(epsilon=0.05, steps=2)
    a = run_attack("pgd", trained.model, x, y, config, seed=1)
    assert torch.equal(a, run_attack("pgd", trained.model, x, y, config, seed=1))
    assert not torch.equal(a, run_attack("pgd", trained.model, x, y, config, seed=2))


@pytest.mark.parametrize(("levels", "steps"), [(0, 0), (0.5, 1), (2, 2), (8, 10), (16, 20),
                                               (32, 36), (64, 68)])  # fmt: skip
def test_kurakin_iteration_count(levels, steps):
    assert kurakin_steps(levels / 255) == steps


@pytest.mark.parametrize("eps", [-0.1, 1.5, math.nan, "8"])
def test_bad_epsilon_is_named(eps):
    with pytest.raises(ConfigError, match="epsilon"):
        AttackConfig(epsilon=eps)


def test_bad_steps_and_beta():
    with pytest.raises(ConfigError, match="steps"):
        AttackConfig(steps=0)
    with pytest.raises(ConfigError, match="beta"):
        AttackConfig(beta=0)


def test_unknown_attack_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"'deepfool'.*fgsm"):
        get_attack("deepfool")


def test_normalised_inputs_are_refused(trained):
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        run_attack("fgsm", trained.model, trained.pixels[:4] * 3 - 1, trained.labels[:4])


def test_gtn_learner_with_batch_statistics():
    from envs.layers import Architecture
    from metaqnn.core.nets import NetConfig, build_model

    arch = Architecture.parse("[C(8,3,1), P(2,2), FC(16), SM(10)]")
    net = build_model(arch, in_channels=1, input_size=8,
                      config=NetConfig(norm="weight+batchstat"))  # fmt: skip
    model = PixelModel(net, (0.3,), (0.3,))
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for name in ATTACKS:
        adv = run_attack(name, model, x, y, AttackConfig(epsilon=0.1, steps=3), batch_size=32)
        assert (adv - x).abs().max() <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
