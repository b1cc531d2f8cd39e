"""Adversarial attacks in [0, 1] pixel space: FGSM, Kurakin's basic iterative and iterative
least-likely-class methods, PGD with a random start, and the L-BFGS-style penalty attack of
the GTN robustness study.

Definitions follow Kurakin, Goodfellow and Bengio (2016, arXiv 1607.02533) rescaled from
[0, 255] to [0, 1]: ``Clip_{X,eps}`` keeps every pixel within ``eps`` of the clean image and
inside [0, 1]; the iterative methods step by ``alpha = 1/255`` (one intensity level) for
``floor(min(255 eps + 4, 1.25 * 255 eps))`` iterations. Every attack returns images inside the
``epsilon`` ball of the clean ones (L-infinity) and inside [0, 1].

Each attack is an :data:`AttackFn` in the :data:`ATTACKS` registry and works on one batch of
a pixel-space model (see :class:`metaqnn.evaluation.pixels.PixelModel`); :func:`run_attack`
runs one over many images in batches with the model frozen (eval mode, no parameter
gradients, both restored afterwards).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from metaqnn.errors import ConfigError
from metaqnn.evaluation.pixels import DEFAULT_BATCH_SIZE, batch_slices, frozen, model_device

PIXEL_LEVEL = 1.0 / 255.0
"""One intensity level of an 8-bit image, in [0, 1] pixel units (Kurakin's alpha)."""


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class AttackConfig:
    """Strength and schedule of an attack; ``None`` fields take the attack's own default."""

    epsilon: float = 8 / 255
    """L-infinity radius of the perturbation in [0, 1] pixel units (Kurakin's eps / 255)."""
    step_size: float | None = None
    """Step of the iterative attacks. Default: 1/255 for ``bim`` and ``ll`` (Kurakin),
    ``2.5 * epsilon / steps`` for ``pgd`` (Madry et al.), 1.0 for ``lbfgs`` (the study's
    step on the raw gradient)."""
    steps: int | None = None
    """Iterations of the iterative attacks. Default: Kurakin's
    ``floor(min(255 eps + 4, 1.25 * 255 eps))`` for ``bim`` and ``ll``, 10 for ``pgd``, 30 for
    ``lbfgs`` (the GTN robustness study)."""
    beta: float = 100.0
    """Strength of the ``lbfgs`` attack: the penalty on the squared L2 distance to the clean
    image is weighted ``1 / beta``, so a larger beta allows larger perturbations."""

    def __post_init__(self) -> None:
        if not (_number(self.epsilon) and 0 <= self.epsilon <= 1):
            raise ConfigError(f"epsilon={self.epsilon!r}: expected a number in [0, 1] (pixels)")
        if self.step_size is not None and not (_number(self.step_size) and self.step_size > 0):
            raise ConfigError(f"step_size={self.step_size!r}: expected None or a positive number")
        steps_ok = isinstance(self.steps, int) and not isinstance(self.steps, bool)
        if self.steps is not None and not (steps_ok and self.steps >= 1):
            raise ConfigError(f"steps={self.steps!r}: expected None or a positive integer")
        if not (_number(self.beta) and self.beta > 0):
            raise ConfigError(f"beta={self.beta!r}: expected a positive number")


def _kurakin_schedule(config: AttackConfig) -> tuple[int, float]:
    """(iterations, step) of Kurakin's iterative methods, unless the config sets them."""
    steps = config.steps if config.steps is not None else kurakin_steps(config.epsilon)
    alpha = config.step_size if config.step_size is not None else PIXEL_LEVEL
    return steps, alpha


def kurakin_steps(epsilon: float) -> int:
    """Kurakin's iteration count ``floor(min(eps + 4, 1.25 eps))`` with eps in levels of 255;
    at least one iteration for a positive epsilon, none for zero."""
    levels = round(255.0 * epsilon, 6)  # 8/255 * 255 is 7.999999...: count it as 8
    return 0 if levels <= 0 else max(1, math.floor(min(levels + 4, 1.25 * levels)))


def clip_to_ball(adv: torch.Tensor, clean: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Kurakin's ``Clip_{X,eps}``: within ``epsilon`` of ``clean`` per pixel, and in [0, 1].

    Args:
        adv: Perturbed images, shape (N, C, H, W).
        clean: The clean images, same shape.
        epsilon: L-infinity radius in pixel units.

    Returns:
        The clipped images, same shape.
    """
    low = (clean - epsilon).clamp_(min=0.0)  # (N, C, H, W)
    high = (clean + epsilon).clamp_(max=1.0)  # (N, C, H, W)
    return torch.minimum(torch.maximum(adv, low), high)


def input_gradient(
    model: nn.Module, pixels: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of the summed cross-entropy w.r.t. the input, and the logits.

    Summing (not averaging) gives every image the gradient of its own loss. Only the input
    is differentiated: parameters get no ``.grad``.

    Args:
        model: Pixel-space classifier.
        pixels: Images (N, C, H, W).
        target: Labels (N,) the loss is taken against.

    Returns:
        ``(grad, logits)``: grad (N, C, H, W), logits (N, classes) detached.
    """
    with torch.enable_grad():
        x = pixels.detach().requires_grad_(True)  # (N, C, H, W)
        logits = model(x)  # (N, classes)
        loss = F.cross_entropy(logits, target, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad, logits.detach()


@torch.no_grad()
def least_likely_class(model: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """Kurakin's target ``y_LL = argmin_y p(y | X)``: the least likely class per image (N,)."""
    return model(pixels).argmin(dim=1)  # (N,)


AttackFn = Callable[
    [nn.Module, torch.Tensor, torch.Tensor, AttackConfig, torch.Generator], torch.Tensor
]
"""``attack(model, pixels, labels, config, generator) -> adversarial pixels``, on one batch."""


def fgsm(
    model: nn.Module,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    config: AttackConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """The fast gradient sign method: ``Clip(X + eps * sign(grad_X J(X, y_true)))``."""
    if config.epsilon == 0:
        return pixels.clone()
    grad, _ = input_gradient(model, pixels, labels)  # (N, C, H, W)
    return (pixels + config.epsilon * grad.sign()).clamp_(0.0, 1.0)


def _iterate_sign(
    model: nn.Module,
    start: torch.Tensor,
    clean: torch.Tensor,
    target: torch.Tensor,
    *,
    epsilon: float,
    alpha: float,
    steps: int,
    toward: bool,
) -> torch.Tensor:
    """``steps`` signed-gradient steps from ``start``, clipped into the ball each step; down the
    loss of ``target`` when ``toward`` (a targeted attack), up it otherwise."""
    sign = -1.0 if toward else 1.0
    adv = start  # (N, C, H, W)
    for _ in range(steps):
        grad, _ = input_gradient(model, adv, target)  # (N, C, H, W)
        adv = clip_to_ball(adv + sign * alpha * grad.sign(), clean, epsilon)
    return adv


def basic_iterative(
    model: nn.Module,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    config: AttackConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """Kurakin's basic iterative method: ``X_{n+1} = Clip_{X,eps}(X_n + alpha sign(grad J(X_n,
    y_true)))`` from ``X_0 = X``."""
    steps, alpha = _kurakin_schedule(config)
    if config.epsilon == 0:
        return pixels.clone()
    return _iterate_sign(model, pixels, pixels, labels, epsilon=config.epsilon, alpha=alpha,
                         steps=steps, toward=False)  # fmt: skip


def least_likely(
    model: nn.Module,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    config: AttackConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """Kurakin's iterative least-likely-class method: ``X_{n+1} = Clip_{X,eps}(X_n - alpha
    sign(grad J(X_n, y_LL)))`` with ``y_LL`` the least likely class of the clean image."""
    steps, alpha = _kurakin_schedule(config)
    if config.epsilon == 0:
        return pixels.clone()
    target = least_likely_class(model, pixels)  # (N,)
    return _iterate_sign(model, pixels, pixels, target, epsilon=config.epsilon, alpha=alpha,
                         steps=steps, toward=True)  # fmt: skip


def pgd(
    model: nn.Module,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    config: AttackConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """Projected gradient descent (Madry et al. 2018): the basic iterative method from a
    uniformly random start inside the ball (drawn from ``generator``)."""
    if config.epsilon == 0:
        return pixels.clone()
    steps = config.steps if config.steps is not None else 10
    alpha = config.step_size if config.step_size is not None else 2.5 * config.epsilon / steps
    noise = torch.rand(pixels.shape, generator=generator, device=generator.device)
    start = pixels + config.epsilon * (2.0 * noise.to(pixels.device) - 1.0)  # (N, C, H, W)
    start = clip_to_ball(start, pixels, config.epsilon)
    return _iterate_sign(model, start, pixels, labels, epsilon=config.epsilon, alpha=alpha,
                         steps=steps, toward=False)  # fmt: skip


def lbfgs_penalty(
    model: nn.Module,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    config: AttackConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """The GTN robustness study's L-BFGS-style attack: 30 steps of
    ``X_{n+1} = Clip_{X,eps}(X_n + a (grad J(X_n, y_true) - (1/beta) grad 1/2 ||X_n - X||^2))``.

    The loss gradient is used raw (not its sign), as in the study. The penalty is on the
    squared distance: the gradient of the plain L2 norm is a unit vector of fixed length
    whatever the distance, so it would throw small perturbations back across the clean
    image at every step instead of shrinking them.
    """
    if config.epsilon == 0:
        return pixels.clone()
    steps = config.steps if config.steps is not None else 30
    alpha = config.step_size if config.step_size is not None else 1.0
    adv = pixels  # (N, C, H, W)
    for _ in range(steps):
        grad, _ = input_gradient(model, adv, labels)  # (N, C, H, W)
        adv = clip_to_ball(adv + alpha * (grad - (adv - pixels) / config.beta), pixels,
                           config.epsilon)  # fmt: skip
    return adv


@dataclass(frozen=True)
class AttackSpec:
    """A registered attack.

    Attributes:
        run: The attack on one batch.
        label: Its name in tables and figures.
        iterative: Whether it takes ``steps`` gradient steps (else one).
    """

    run: AttackFn
    label: str
    iterative: bool


#: Attack name -> spec. ``fgsm``, ``bim`` and ``ll`` are Kurakin's fast, basic iterative and
#: iterative least-likely-class methods.
ATTACKS: dict[str, AttackSpec] = {
    "fgsm": AttackSpec(fgsm, "fast (FGSM)", iterative=False),
    "bim": AttackSpec(basic_iterative, "basic iterative", iterative=True),
    "ll": AttackSpec(least_likely, "iterative least-likely", iterative=True),
    "pgd": AttackSpec(pgd, "PGD (random start)", iterative=True),
    "lbfgs": AttackSpec(lbfgs_penalty, "L-BFGS-style penalty", iterative=True),
}


def get_attack(name: str) -> AttackSpec:
    """The registry entry of ``name``.

    Raises:
        ConfigError: If ``name`` is not registered; the message lists the known names.
    """
    if name not in ATTACKS:
        raise ConfigError(f"unknown attack {name!r}; choose from {', '.join(ATTACKS)}")
    return ATTACKS[name]


def run_attack(
    name: str,
    model: nn.Module,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    config: AttackConfig = AttackConfig(),
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    progress: bool = False,
) -> torch.Tensor:
    """Attack many images in batches on the model's device, with the model frozen.

    Args:
        name: A key of :data:`ATTACKS`.
        model: Pixel-space classifier (e.g. a :class:`~metaqnn.evaluation.pixels.PixelModel`).
        pixels: Clean images in [0, 1], shape (N, C, H, W), on any device.
        labels: True labels, shape (N,).
        config: Strength and schedule.
        batch_size: Images per batch.
        seed: Seeds the CPU generator of random starts (one generator for the whole run).
        progress: Show a tqdm bar over batches.

    Returns:
        Adversarial images, shape (N, C, H, W), in [0, 1] and within ``config.epsilon`` of
        ``pixels``, on the model's device.

    Raises:
        ConfigError: For an unknown attack or images outside [0, 1].
    """
    spec = get_attack(name)
    if len(pixels) != len(labels):
        raise ConfigError(f"{len(pixels)} images but {len(labels)} labels")
    if len(pixels) and (pixels.min() < 0 or pixels.max() > 1):
        raise ConfigError(
            f"attack inputs must be pixels in [0, 1], got [{pixels.min():.3g}, "
            f"{pixels.max():.3g}]; denormalise them first"
        )
    device = model_device(model)
    generator = torch.Generator().manual_seed(seed)
    out = []
    slices = batch_slices(len(pixels), batch_size)
    with frozen(model):
        for s in tqdm(slices, desc=f"{name} eps={config.epsilon:.4g}", disable=not progress,
                      leave=False):  # fmt: skip
            x, y = pixels[s].to(device), labels[s].to(device)  # (B, C, H, W), (B,)
            out.append(spec.run(model, x, y, config, generator).detach())
    return torch.cat(out) if out else pixels.to(device).clone()
