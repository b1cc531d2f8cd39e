import pytest
import torch

from gtn.curriculum import CURRICULA, balanced_labels, build_curriculum
from gtn.generator import Generator, GeneratorConfig


@pytest.mark.parametrize(("channels", "size"), [(1, 8), (1, 28), (3, 32)])
def test_generator_shapes_and_range(channels, size):
    config = GeneratorConfig(channels=channels, image_size=size, low=(-0.5,), high=(2.5,),
                             hidden=64, conv_channels=(16, 8), noise_dim=12)  # fmt: skip
    gen = Generator(config)
    labels = torch.arange(6) % 10
    x = gen(torch.randn(6, 12) * 50, labels)  # large noise drives tanh to its ends
    assert x.shape == (6, channels, size, size)
    assert x.min() >= -0.5 and x.max() <= 2.5
    soft = torch.nn.functional.one_hot(labels, 10).float()
    assert torch.allclose(gen(torch.ones(6, 12), soft), gen(torch.ones(6, 12), labels))


def test_generator_per_channel_range():
    config = GeneratorConfig(channels=3, image_size=8, low=(-1.0, 0.0, 5.0), high=(0.0, 1.0, 6.0),
                             hidden=32, conv_channels=(8, 4), noise_dim=4)  # fmt: skip
    x = Generator(config)(torch.randn(4, 4) * 100, torch.arange(4))
    for c, (lo, hi) in enumerate([(-1, 0), (0, 1), (5, 6)]):
        assert lo <= x[:, c].min() and x[:, c].max() <= hi


@pytest.mark.parametrize(
    ("changes", "match"),
    [({"image_size": 30}, "multiple of 4"), ({"low": (1.0,), "high": (0.0,)}, "below"),
     ({"channels": 3, "low": (0.0, 0.0)}, "low")],
)  # fmt: skip
def test_generator_config_errors(changes, match):
    with pytest.raises(ValueError, match=match):
        GeneratorConfig(**changes)


def test_generator_uses_weight_norm_everywhere():
    gen = Generator(GeneratorConfig(image_size=8, hidden=16, conv_channels=(8, 4), noise_dim=4))
    layers = [m for m in gen.modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)]
    assert layers and all(hasattr(m, "parametrizations") for m in layers)


def test_balanced_labels():
    labels = balanced_labels(128, 10)
    counts = torch.bincount(labels, minlength=10)
    assert counts.max() - counts.min() <= 1


@pytest.mark.parametrize("name", sorted(CURRICULA))
@pytest.mark.parametrize("soft", [False, True])
def test_curriculum_shapes(name, soft):
    cur = build_curriculum(name, steps=5, batch_size=12, noise_dim=7, num_classes=4,
                           soft_labels=soft)  # fmt: skip
    rng = torch.Generator().manual_seed(0)
    for step in range(5):
        batch = cur(step, rng)
        assert batch.noise.shape == (12, 7)
        assert batch.labels.shape == (12,) and batch.labels.dtype == torch.int64
        if soft:
            assert batch.targets.shape == (12, 4)
            assert torch.allclose(batch.targets.sum(1), torch.ones(12))
            assert (batch.targets.argmax(1) == batch.labels).all()
        else:
            assert batch.targets is None
    with pytest.raises(IndexError, match="outside"):
        cur(5, rng)


def test_curricula_learn_what_they_should():
    kwargs = {"steps": 4, "batch_size": 8, "noise_dim": 3, "num_classes": 4}
    learned = {name: sum(p.numel() for p in build_curriculum(name, **kwargs).parameters())
               for name in CURRICULA}  # fmt: skip
    assert learned["none"] == 0
    assert learned["full"] == 4 * 8 * 3
    assert learned["shuffled-batch"] == 32 * 8 * 3
    assert learned["all-shuffled"] == 4096 * 3


def test_full_is_fixed_and_none_is_fresh():
    kwargs = {"steps": 3, "batch_size": 8, "noise_dim": 3, "num_classes": 4}
    full, none = build_curriculum("full", **kwargs), build_curriculum("none", **kwargs)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    assert torch.equal(full(1, g1).noise, full(1, g2).noise)
    assert not torch.equal(full(0, g1).noise, full(1, g1).noise)
    assert not torch.equal(none(0, g1).noise, none(0, g2).noise)
    shuffled = build_curriculum("all-shuffled", **kwargs, pool_size=16)
    noise = shuffled(0, g1).noise
    assert all(any(torch.equal(row, p) for p in shuffled.noise) for row in noise)


def test_unknown_curriculum():
    with pytest.raises(ValueError, match="full"):
        build_curriculum("random", steps=1, batch_size=1, noise_dim=1, num_classes=2)
