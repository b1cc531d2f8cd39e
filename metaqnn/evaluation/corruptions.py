"""Common corruptions for small images (28x28 grey, 32x32 colour), 5 severities each.

Written with torch and torchvision only (the ``imagecorruptions`` package fails under 32x32):
batched, on the images' device, deterministic for a seed, for any channel count. Images are
pixels in [0, 1], shape (N, C, H, W); every corruption returns the same shape in [0, 1].

Severities depend on the kind of image (:mod:`metaqnn.evaluation.corruption_levels`): MNIST-C's
levels (Mu & Gilmer 2019) for 28x28 grey digits, CIFAR-10-C's (Hendrycks & Dietterich 2019)
for 32x32 colour images; the kind is read from the images' channels and size unless given.
Elastic is the standard deviation of a smooth displacement field. The geometric ones (rotate,
shear, scale, translate) follow MNIST-C and fill uncovered pixels with black. Sizes are given
for 32 pixels and scaled by ``H / 32``: blur kernels, elastic fields.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from metaqnn.errors import ConfigError
from metaqnn.evaluation.corruption_levels import LEVELS, Levels, check_kind, image_kind

SEVERITIES = (1, 2, 3, 4, 5)
"""The severity levels every corruption has."""


# --------------------------------------------------------------------------- random draws
def _uniform(
    shape: tuple[int, ...], generator: torch.Generator, like: torch.Tensor
) -> torch.Tensor:
    """Uniform [0, 1) numbers drawn from a CPU generator, put on ``like``'s device."""
    return torch.rand(shape, generator=generator).to(like.device, like.dtype)


def _normal(shape: tuple[int, ...], generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """Standard normal numbers drawn from a CPU generator, put on ``like``'s device."""
    return torch.randn(shape, generator=generator).to(like.device, like.dtype)


def _signs(n: int, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """``n`` random signs (+1 or -1), shape (n,)."""
    return torch.randint(0, 2, (n,), generator=generator).to(like.device, like.dtype) * 2 - 1


# --------------------------------------------------------------------------- filters
def _filter(pixels: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve every channel of (N, C, H, W) with a 2-D ``kernel`` (k, k), edges replicated."""
    channels, k = pixels.shape[1], kernel.shape[-1]
    weight = kernel.to(pixels).expand(channels, 1, k, k)  # (C, 1, k, k)
    padded = F.pad(pixels, (k // 2,) * 4, mode="replicate")  # (N, C, H + k - 1, W + k - 1)
    return F.conv2d(padded, weight, groups=channels)  # (N, C, H, W)


def _gaussian_1d(sigma: float) -> torch.Tensor:
    """A normalised 1-D Gaussian kernel (k,), k = 2 ceil(3 sigma) + 1, in float64."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)  # (k,)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    """A normalised 2-D Gaussian kernel (k, k), k = 2 ceil(3 sigma) + 1."""
    g = _gaussian_1d(sigma)
    return torch.outer(g, g).float()  # (k, k)


def _band(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """(size, size + k - 1): row i holds ``kernel`` at columns i..i+k-1, so that ``band @ v``
    is the valid 1-D correlation of a padded vector ``v`` with ``kernel``."""
    k = kernel.shape[0]
    index = torch.arange(size, device=kernel.device)[:, None] + torch.arange(
        k, device=kernel.device
    )
    band = torch.zeros(size, size + k - 1, dtype=kernel.dtype, device=kernel.device)
    return band.scatter_(1, index, kernel.expand(size, k))


def _gaussian_filter(pixels: torch.Tensor, sigma: float) -> torch.Tensor:
    """:func:`_filter` with :func:`_gaussian_kernel` ``(sigma)``, computed separably as two
    banded matrix products over the same replicate-padded input: the same result up to float
    rounding, about 9x faster on a CPU than the depthwise 2-D convolution (10,000 MNIST-sized
    two-channel maps, k = 17: 0.14 s against 1.17 s), which made the elastic field the slowest
    corruption."""
    g = _gaussian_1d(sigma).to(pixels)
    k = g.shape[0]
    _, _, h, w = pixels.shape
    padded = F.pad(pixels, (k // 2,) * 4, mode="replicate")  # (N, C, H + k - 1, W + k - 1)
    return _band(g, h) @ padded @ _band(g, w).T  # (N, C, H, W)


def gaussian_blur(pixels: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur with standard deviation ``sigma`` in pixels (the identity for 0).

    Args:
        pixels: Images in [0, 1], shape (N, C, H, W).
        sigma: Kernel standard deviation, in pixels of these images.

    Returns:
        Blurred images, same shape, in [0, 1].
    """
    if sigma < 0:
        raise ConfigError(f"blur sigma must be non-negative, got {sigma!r}")
    if sigma == 0:
        return pixels.clone()
    return _gaussian_filter(pixels, sigma).clamp_(0.0, 1.0)


def gaussian_noise(pixels: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Additive Gaussian noise ``clip(x + sigma z)`` (the study's ``x + beta z``).

    Args:
        pixels: Images in [0, 1], shape (N, C, H, W).
        sigma: Noise standard deviation in pixel units.
        generator: CPU generator the noise is drawn from.

    Returns:
        Noisy images, same shape, in [0, 1].
    """
    if sigma < 0:
        raise ConfigError(f"noise sigma must be non-negative, got {sigma!r}")
    return (pixels + sigma * _normal(pixels.shape, generator, pixels)).clamp_(0.0, 1.0)


# --------------------------------------------------------------------------- corruptions
def _scale(pixels: torch.Tensor) -> float:
    """Image size relative to 32 pixels."""
    return pixels.shape[-1] / 32.0


def _shot_noise(x: torch.Tensor, rate: float, gen: torch.Generator) -> torch.Tensor:
    counts = torch.poisson(x.detach().cpu() * rate, generator=gen)  # (N, C, H, W)
    return (counts / rate).to(x.device, x.dtype).clamp_(0.0, 1.0)


def _impulse_noise(x: torch.Tensor, amount: float, gen: torch.Generator) -> torch.Tensor:
    u = _uniform(x.shape, gen, x)  # (N, C, H, W); salt below amount/2, pepper up to amount
    out = torch.where(u < amount / 2, torch.ones_like(x), x)
    return torch.where((u >= amount / 2) & (u < amount), torch.zeros_like(x), out)


def _gaussian_blur(x: torch.Tensor, sigma: float, gen: torch.Generator) -> torch.Tensor:
    return gaussian_blur(x, sigma * _scale(x))


def _defocus_blur(
    x: torch.Tensor, level: tuple[float, float], gen: torch.Generator
) -> torch.Tensor:
    radius, alias_sigma = level[0] * _scale(x), level[1] * _scale(x)
    half = math.ceil(radius) + math.ceil(3 * alias_sigma)
    t = torch.arange(-half, half + 1, dtype=torch.float32)  # (k,)
    disk = ((t[:, None] ** 2 + t[None, :] ** 2) <= radius**2).float()  # (k, k) aliased disk
    disk = _filter(disk[None, None], _gaussian_kernel(alias_sigma))[0, 0] if alias_sigma else disk
    return _filter(x, disk / disk.sum()).clamp_(0.0, 1.0)


def _brightness(x: torch.Tensor, shift: float, gen: torch.Generator) -> torch.Tensor:
    """Add ``shift`` to the HSV value: scale each pixel's channels by V'/V (hue and saturation
    kept); a black pixel becomes grey V'."""
    value = x.amax(dim=1, keepdim=True)  # (N, 1, H, W), the HSV value
    new = (value + shift).clamp(0.0, 1.0)  # (N, 1, H, W)
    ratio = new / value.clamp_min(1e-12)
    return torch.where(value > 0, x * ratio, new.expand_as(x)).clamp_(0.0, 1.0)


def _contrast(x: torch.Tensor, factor: float, gen: torch.Generator) -> torch.Tensor:
    mean = x.mean(dim=(2, 3), keepdim=True)  # (N, C, 1, 1)
    return ((x - mean) * factor + mean).clamp_(0.0, 1.0)


def _jpeg(x: torch.Tensor, quality: int, gen: torch.Generator) -> torch.Tensor:
    from torchvision.transforms.v2.functional import jpeg

    as_bytes = (x.detach() * 255).round_().clamp_(0, 255).to("cpu", torch.uint8)  # (N, C, H, W)
    with warnings.catch_warnings():  # torchvision 0.29 deprecates its codecs for torchcodec
        warnings.simplefilter("ignore", DeprecationWarning)
        decoded = jpeg(as_bytes, quality=quality)  # (N, C, H, W) uint8
    return decoded.to(x.device, x.dtype).div_(255.0)


def _pixelate(x: torch.Tensor, factor: float, gen: torch.Generator) -> torch.Tensor:
    size = x.shape[-2:]
    small = F.interpolate(x, size=[max(1, int(s * factor)) for s in size], mode="area")
    return F.interpolate(small, size=size, mode="nearest")


def _smooth_field(
    n: int, channels: int, size: int, sigma: float, gen: torch.Generator, like: torch.Tensor
) -> torch.Tensor:
    """Gaussian-smoothed uniform noise, shape (n, channels, size, size), std 1 per map."""
    field = _gaussian_filter(_uniform((n, channels, size, size), gen, like) * 2 - 1, sigma)
    return field / field.std(dim=(2, 3), keepdim=True).clamp_min(1e-12)


def _warp(x: torch.Tensor, grid: torch.Tensor, padding: str) -> torch.Tensor:
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def _elastic(x: torch.Tensor, std_pixels: float, gen: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    shift = _smooth_field(n, 2, h, 3.0 * _scale(x), gen, x) * std_pixels * _scale(x)  # pixels
    shift = shift * (2.0 / h)  # (N, 2, H, W) in grid units (a pixel is 2/H wide)
    base = F.affine_grid(torch.eye(2, 3, device=x.device).expand(n, 2, 3), [n, 1, h, w],
                         align_corners=False)  # fmt: skip
    return _warp(x, base + shift.permute(0, 2, 3, 1), "border").clamp_(0.0, 1.0)


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample each image through its own output->input map ``theta`` (N, 2, 3)."""
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)  # (N, H, W, 2)
    return _warp(x, grid, "zeros").clamp_(0.0, 1.0)


def _rotate(x: torch.Tensor, degrees: float, gen: torch.Generator) -> torch.Tensor:
    angle = _signs(len(x), gen, x) * math.radians(degrees)  # (N,)
    cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    return _affine(x, theta)  # theta (N, 2, 3)


def _shear(x: torch.Tensor, level: tuple[float, float], gen: torch.Generator) -> torch.Tensor:
    """Output-to-input map ``(u, v) -> (u +- shear v, scale v)``, a random sign per image."""
    s = _signs(len(x), gen, x) * level[0]  # (N,)
    one, zero = torch.ones_like(s), torch.zeros_like(s)
    vertical = torch.full_like(s, level[1])
    theta = torch.stack([torch.stack([one, s, zero], 1), torch.stack([zero, vertical, zero], 1)], 1)
    return _affine(x, theta)


def _scale_down(x: torch.Tensor, factor: float, gen: torch.Generator) -> torch.Tensor:
    theta = torch.tensor([[1 / factor, 0.0, 0.0], [0.0, 1 / factor, 0.0]]).expand(len(x), 2, 3)
    return _affine(x, theta)


def _translate(x: torch.Tensor, fraction: float, gen: torch.Generator) -> torch.Tensor:
    n = len(x)
    shift = torch.stack([_signs(n, gen, x), _signs(n, gen, x)], 1) * 2 * fraction  # (N, 2)
    theta = torch.cat([torch.eye(2, device=x.device).expand(n, 2, 2).to(x), shift[..., None]], 2)
    return _affine(x, theta)


def _fog(x: torch.Tensor, level: tuple[float, float], gen: torch.Generator) -> torch.Tensor:
    """CIFAR-10-C's fog with fractal noise (octaves of bilinearly upsampled noise whose
    amplitude falls by ``decay`` per octave) instead of its diamond-square plasma."""
    strength, decay = level
    n, _, h, w = x.shape
    fog = torch.zeros(n, 1, h, w, device=x.device, dtype=x.dtype)
    for octave in range(1, max(2, math.ceil(math.log2(h))) + 1):
        cells = min(2**octave, h)
        noise = _uniform((n, 1, cells, cells), gen, x)  # (N, 1, cells, cells)
        fog += F.interpolate(noise, size=(h, w), mode="bilinear", align_corners=False) / (
            decay ** (octave - 1)
        )
    low, high = fog.amin(dim=(2, 3), keepdim=True), fog.amax(dim=(2, 3), keepdim=True)
    fog = (fog - low) / (high - low).clamp_min(1e-12)  # (N, 1, H, W) in [0, 1]
    peak = x.amax(dim=(1, 2, 3), keepdim=True)  # (N, 1, 1, 1)
    return ((x + strength * fog) * peak / (peak + strength)).clamp_(0.0, 1.0)


CorruptionFn = Callable[[torch.Tensor, Any, torch.Generator], torch.Tensor]
"""``corruption(pixels, level, generator) -> pixels``: one level's parameter applied."""


@dataclass(frozen=True)
class CorruptionSpec:
    """A registered corruption.

    Attributes:
        apply: Applies one level's parameter to a batch.
        levels: Image kind (``"mnist"``, ``"cifar"``) -> the parameters of severities 1 to 5.
        family: ``noise``, ``blur``, ``digital``, ``geometric`` or ``weather``.
    """

    apply: CorruptionFn
    levels: dict[str, Levels]
    family: str


def _spec(name: str, apply: CorruptionFn, family: str) -> CorruptionSpec:
    """The spec of ``name`` with its levels of every image kind from :data:`LEVELS`."""
    return CorruptionSpec(apply, {kind: table[name] for kind, table in LEVELS.items()}, family)


#: Corruption name -> spec; levels are per image kind, the parameters of severities 1..5.
CORRUPTIONS: dict[str, CorruptionSpec] = {
    "gaussian_noise": _spec("gaussian_noise", lambda x, s, g: gaussian_noise(x, s, g), "noise"),
    "shot_noise": _spec("shot_noise", _shot_noise, "noise"),
    "impulse_noise": _spec("impulse_noise", _impulse_noise, "noise"),
    "gaussian_blur": _spec("gaussian_blur", _gaussian_blur, "blur"),
    "defocus_blur": _spec("defocus_blur", _defocus_blur, "blur"),
    "brightness": _spec("brightness", _brightness, "digital"),
    "contrast": _spec("contrast", _contrast, "digital"),
    "jpeg": _spec("jpeg", _jpeg, "digital"),
    "pixelate": _spec("pixelate", _pixelate, "digital"),
    "elastic": _spec("elastic", _elastic, "digital"),
    "rotate": _spec("rotate", _rotate, "geometric"),
    "shear": _spec("shear", _shear, "geometric"),
    "scale": _spec("scale", _scale_down, "geometric"),
    "translate": _spec("translate", _translate, "geometric"),
    "fog": _spec("fog", _fog, "weather"),
}


def get_corruption(name: str) -> CorruptionSpec:
    """The registry entry of ``name``.

    Raises:
        ConfigError: If ``name`` is not registered; the message lists the known names.
    """
    if name not in CORRUPTIONS:
        raise ConfigError(f"unknown corruption {name!r}; choose from {', '.join(CORRUPTIONS)}")
    return CORRUPTIONS[name]


def corrupt(
    pixels: torch.Tensor,
    name: str,
    severity: int,
    *,
    kind: str | None = None,
    seed: int = 0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Apply a registered corruption at a severity, with the levels of the images' kind.

    Args:
        pixels: Images in [0, 1], shape (N, C, H, W), on any device.
        name: A key of :data:`CORRUPTIONS`.
        severity: 1 (mildest) to 5.
        kind: Whose levels to use, ``"mnist"`` (MNIST-C's) or ``"cifar"`` (CIFAR-10-C's);
            default :func:`~metaqnn.evaluation.corruption_levels.image_kind` of ``pixels``
            (``"mnist"`` for grey images of at most 28x28).
        seed: Seeds a fresh CPU generator when ``generator`` is not given.
        generator: CPU generator to draw randomness from (advanced by the call).

    Returns:
        Corrupted images, same shape, device and dtype, in [0, 1]. The same seed gives the
        same result.

    Raises:
        ConfigError: For an unknown name or kind, a severity outside 1..5, or images that are
            not a (N, C, H, W) float tensor.
    """
    spec = get_corruption(name)
    if severity not in SEVERITIES or isinstance(severity, bool):
        raise ConfigError(f"severity {severity!r} of {name}: expected one of {SEVERITIES}")
    if pixels.ndim != 4 or not pixels.is_floating_point():
        raise ConfigError(f"expected float images (N, C, H, W), got {pixels.dtype} "
                          f"{tuple(pixels.shape)}")  # fmt: skip
    levels = spec.levels[image_kind(pixels) if kind is None else check_kind(kind)]
    gen = generator if generator is not None else torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return spec.apply(pixels, levels[severity - 1], gen)
