import itertools

import pytest
import torch

from metaqnn.errors import ConfigError
from metaqnn.evaluation.corruption_levels import CIFAR, IMAGE_KINDS, LEVELS, MNIST, image_kind
from metaqnn.evaluation.corruptions import (
    CORRUPTIONS,
    SEVERITIES,
    corrupt,
    gaussian_blur,
    gaussian_noise,
)
from metaqnn.evaluation.pixels import accuracy

SHAPES = [(3, 1, 28, 28), (3, 3, 32, 32)]


def _images(shape: tuple[int, ...]) -> torch.Tensor:
    """Smooth-ish images in [0, 1] with a bright blob, like digits or photos."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=gen) * 0.3
    x[..., 8:20, 10:18] += 0.6
    return x.clamp(0, 1)


@pytest.mark.parametrize("shape", SHAPES, ids=["1x28x28", "3x32x32"])
@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruption_shape_range_and_determinism(name, shape):
    x = _images(shape)
    for severity in SEVERITIES:
        out = corrupt(x, name, severity, seed=7)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert out.min() >= 0 and out.max() <= 1
        assert torch.isfinite(out).all()
        assert torch.equal(out, corrupt(x, name, severity, seed=7)), f"{name} {severity}"
    assert not torch.equal(corrupt(x, name, 5, seed=7), x), f"{name} did nothing"


def test_the_input_is_not_modified():
    x = _images(SHAPES[1])
    copy = x.clone()
    for name in CORRUPTIONS:
        corrupt(x, name, 3)
    assert torch.equal(x, copy)


def test_severity_degrades_a_trained_model_monotonically_on_average(trained):
    x, y = trained.pixels, trained.labels
    clean = accuracy(trained.model, x, y)
    means = [
        sum(accuracy(trained.model, corrupt(x, name, s), y) for name in CORRUPTIONS)
        / len(CORRUPTIONS)
        for s in SEVERITIES
    ]
    assert all(later <= earlier + 0.005 for earlier, later in itertools.pairwise(means))
    assert means[-1] < means[0] < clean + 0.005


def test_every_kind_has_five_levels_of_every_corruption():
    for kind, table in LEVELS.items():
        assert set(table) == set(CORRUPTIONS), kind
        assert all(len(levels) == len(SEVERITIES) for levels in table.values()), kind
    assert all(set(spec.levels) == set(IMAGE_KINDS) for spec in CORRUPTIONS.values())


@pytest.mark.parametrize(
    ("shape", "kind"),
    [((2, 1, 28, 28), MNIST), ((2, 1, 8, 8), MNIST), ((2, 3, 32, 32), CIFAR),
     ((2, 1, 32, 32), CIFAR), ((2, 3, 28, 28), CIFAR)],
)  # fmt: skip
def test_the_kind_is_read_from_channels_and_size(shape, kind):
    assert image_kind(torch.zeros(shape)) == kind


def test_grey_digits_get_mnist_c_levels_unless_a_kind_is_given():
    x = _images(SHAPES[0])
    gen = torch.Generator
    mnist_c = gaussian_noise(x, 0.38, gen().manual_seed(3))  # MNIST-C's severity 5
    cifar_c = gaussian_noise(x, 0.10, gen().manual_seed(3))  # CIFAR-10-C's severity 5
    assert torch.equal(corrupt(x, "gaussian_noise", 5, seed=3), mnist_c)
    assert torch.equal(corrupt(x, "gaussian_noise", 5, seed=3, kind="cifar"), cifar_c)
    colour = _images(SHAPES[1])
    assert torch.equal(corrupt(colour, "contrast", 4), corrupt(colour, "contrast", 4, kind=CIFAR))
    assert not torch.equal(corrupt(colour, "contrast", 4), corrupt(colour, "contrast", 4,
                                                                   kind=MNIST))  # fmt: skip
    with pytest.raises(ConfigError, match=r"'svhn'.*mnist, cifar"):
        corrupt(x, "fog", 1, kind="svhn")


def test_mnist_geometric_levels_are_mnist_c_pixels():
    x = torch.zeros(1, 1, 28, 28)
    x[..., 10:14, 12:16] = 1.0
    out = corrupt(x, "translate", 3)  # MNIST-C: 3 pixels along each axis, random signs
    rows, cols = out[0, 0].nonzero(as_tuple=True)
    assert {int(rows.min()) - 10, int(cols.min()) - 12} <= {-3, 3}


def test_noise_and_blur_at_zero_are_identities():
    x = _images(SHAPES[0])
    assert torch.equal(gaussian_blur(x, 0.0), x)
    assert torch.equal(gaussian_noise(x, 0.0, torch.Generator().manual_seed(0)), x)


def test_blur_keeps_a_constant_image():
    x = torch.full((2, 3, 32, 32), 0.4)
    torch.testing.assert_close(gaussian_blur(x, 2.0), x)
    torch.testing.assert_close(corrupt(x, "defocus_blur", 5), x)


def test_brightness_adds_to_grey_and_contrast_keeps_the_mean():
    x = torch.full((1, 1, 28, 28), 0.5)
    x[..., :14, :] = 0.2
    torch.testing.assert_close(corrupt(x, "brightness", 2), x + 0.2)  # MNIST-C's level
    torch.testing.assert_close(corrupt(x, "brightness", 2, kind="cifar"), x + 0.1)
    out = corrupt(x, "contrast", 3)
    torch.testing.assert_close(out.mean(), x.mean())
    assert out.std() < x.std()


def test_severity_and_name_errors():
    x = _images(SHAPES[0])
    for bad in (0, 6, 2.5, True):
        with pytest.raises(ConfigError, match="severity"):
            corrupt(x, "fog", bad)
    with pytest.raises(ConfigError, match=r"'snow'.*gaussian_noise"):
        corrupt(x, "snow", 1)
    with pytest.raises(ConfigError, match=r"\(N, C, H, W\)"):
        corrupt(x[0], "fog", 1)


def test_tiny_images_work():
    x = _images((2, 1, 8, 8))
    for name in CORRUPTIONS:
        assert corrupt(x, name, 5).shape == x.shape


@pytest.mark.parametrize("sigma", [0.5, 1.0, 3.0])
def test_separable_gaussian_equals_the_2d_filter(sigma):
    from metaqnn.evaluation.corruptions import _filter, _gaussian_filter, _gaussian_kernel

    x = torch.rand(3, 2, 12, 12, generator=torch.Generator().manual_seed(0))
    reference = _filter(x, _gaussian_kernel(sigma))
    assert torch.allclose(_gaussian_filter(x, sigma), reference, atol=1e-6)


def test_robustness_config_checks_the_kind():
    from metaqnn.evaluation.robustness import RobustnessConfig

    assert RobustnessConfig(corruption_kind="cifar").corruption_kind == "cifar"
    with pytest.raises(ConfigError, match="'svhn'"):
        RobustnessConfig(corruption_kind="svhn")
