"""The robustness report of one model: accuracy under noise and blur sweeps, attacks and common
corruptions, and Kurakin's destruction rate of adversarial examples under transformations.

Definitions: the noise and blur sweeps are the GTN robustness study's (``clip(x + beta z)``,
Gaussian blur of standard deviation beta); attacks are :mod:`metaqnn.evaluation.attacks`,
corruptions :mod:`metaqnn.evaluation.corruptions`. The destruction rate of a transformation T
(Kurakin et al. 2016, eq. 1) is the share of the images that are classified correctly when
clean and wrongly when adversarial that are classified correctly again after T.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from metaqnn.errors import ConfigError
from metaqnn.evaluation.attacks import ATTACKS, AttackConfig, run_attack
from metaqnn.evaluation.corruption_levels import check_kind, image_kind
from metaqnn.evaluation.corruptions import (
    CORRUPTIONS,
    SEVERITIES,
    corrupt,
    gaussian_blur,
    gaussian_noise,
)
from metaqnn.evaluation.pixels import (
    DEFAULT_BATCH_SIZE,
    inference_model,
    model_device,
    predict,
)

#: Kurakin's transformations for destruction rates, as corruptions of the registry.
DESTRUCTION_TRANSFORMS = ("gaussian_blur", "gaussian_noise", "jpeg", "brightness", "contrast")


def _levels(*values: int) -> tuple[float, ...]:
    return tuple(v / 255 for v in values)


@dataclass(frozen=True)
class RobustnessConfig:
    """What the robustness report measures."""

    noise_strengths: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
    """Standard deviations beta of the additive Gaussian noise sweep, in pixel units."""
    blur_strengths: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
    """Standard deviations beta of the Gaussian blur sweep, in pixels."""
    attacks: tuple[str, ...] = ("fgsm", "bim", "ll", "pgd", "lbfgs")
    """Attacks (keys of ``ATTACKS``) swept over ``epsilons``."""
    epsilons: tuple[float, ...] = _levels(4, 8, 16, 32)
    """L-infinity radii of the attack sweep in pixel units (0, the clean accuracy, is added)."""
    beta: float = 100.0
    """Strength of the ``lbfgs`` attack (see :class:`AttackConfig`)."""
    corruptions: tuple[str, ...] = tuple(CORRUPTIONS)
    """Corruptions (keys of ``CORRUPTIONS``), each at severities 1 to 5."""
    corruption_kind: str | None = None
    """Whose severity levels the corruptions and destruction transforms use: ``"mnist"``
    (MNIST-C's) or ``"cifar"`` (CIFAR-10-C's); None reads it from the images (``"mnist"``
    for grey images of at most 28x28, see :mod:`metaqnn.evaluation.corruption_levels`)."""
    destruction_attacks: tuple[str, ...] = ("fgsm", "bim", "ll")
    """Attacks whose adversarial examples get destruction rates (Kurakin's three)."""
    destruction_epsilon: float = 16 / 255
    """Radius of the adversarial examples whose destruction rates are measured."""
    destruction_transforms: tuple[str, ...] = DESTRUCTION_TRANSFORMS
    """Corruptions used as Kurakin's transformations, each at severities 1 to 5."""
    attack_images: int | None = None
    """Attack only the first this many images (attacks cost a backward pass per step);
    None for all."""
    batch_size: int = DEFAULT_BATCH_SIZE
    """Images per forward pass."""
    fast_inference: bool = True
    """Predict (not attack) with a traced, frozen, inference-optimised copy of the model
    (:func:`~metaqnn.evaluation.pixels.inference_model`; the model itself when the copy's
    logits differ): most of a report is forward passes over corrupted images."""
    examples: int = 8
    """Images kept for the example figures."""
    seed: int = 0
    """Seeds every random draw (noise, corruptions, random starts)."""

    def __post_init__(self) -> None:
        for name in (*self.attacks, *self.destruction_attacks):
            if name not in ATTACKS:
                raise ConfigError(f"unknown attack {name!r}; choose from {', '.join(ATTACKS)}")
        for name in (*self.corruptions, *self.destruction_transforms):
            if name not in CORRUPTIONS:
                raise ConfigError(
                    f"unknown corruption {name!r}; choose from {', '.join(CORRUPTIONS)}"
                )
        if self.corruption_kind is not None:
            check_kind(self.corruption_kind)
        for eps in (*self.epsilons, self.destruction_epsilon):
            AttackConfig(epsilon=eps, beta=self.beta)  # raises a ConfigError naming eps
        if self.destruction_epsilon == 0:
            raise ConfigError("destruction_epsilon=0: adversarial examples need a positive radius")
        for label, values in (("noise", self.noise_strengths), ("blur", self.blur_strengths)):
            if any(not (math.isfinite(v) and v >= 0) for v in values):
                raise ConfigError(f"{label} strengths must be non-negative, got {values}")
        if self.attack_images is not None and self.attack_images < 1:
            raise ConfigError(f"attack_images must be None or positive, got {self.attack_images}")
        if self.batch_size < 1 or self.examples < 0:
            raise ConfigError(f"batch_size {self.batch_size} and examples {self.examples}: "
                              "expected a positive and a non-negative integer")  # fmt: skip


@dataclass(frozen=True)
class Curve:
    """Accuracy against the strength of one perturbation.

    Attributes:
        strengths: The strengths (epsilon, beta or severity), ascending as configured.
        accuracies: Accuracy at each strength, in [0, 1].
    """

    strengths: tuple[float, ...]
    accuracies: tuple[float, ...]

    @property
    def mean(self) -> float:
        """Mean accuracy over the strengths that were measured (NaN marks a strength that
        cannot act on the images, see :func:`evaluate_robustness`; NaN if none was)."""
        measured = [a for a in self.accuracies if not math.isnan(a)]
        return sum(measured) / len(measured) if measured else math.nan


@dataclass(frozen=True)
class Destruction:
    """Destruction rates of one attack's adversarial examples.

    Attributes:
        fooled: Images right when clean and wrong when adversarial (the denominator).
        rates: Transformation -> destruction rate at severities 1 to 5 (NaN if none fooled).
    """

    fooled: int
    rates: dict[str, tuple[float, ...]]

    def mean(self, transform: str) -> float:
        """Mean rate of a transformation over its severities."""
        values = self.rates[transform]
        return sum(values) / len(values)


@dataclass(frozen=True)
class RobustnessReport:
    """The measurements of :func:`evaluate_robustness`.

    Attributes:
        n_images: Images of the noise, blur and corruption measurements.
        n_attack_images: Images attacked (the first ones).
        clean_accuracy: Accuracy on the ``n_images`` clean images.
        noise: Accuracy against Gaussian noise beta.
        blur: Accuracy against Gaussian blur beta.
        attacks: Attack -> accuracy against epsilon (epsilon 0 first).
        corruptions: Corruption -> accuracy against severity 1..5.
        destruction: Attack -> its destruction rates at ``destruction_epsilon``.
        timings: Section -> wall-clock seconds.
        config: What was measured.
        examples: Example images for figures (CPU tensors (k, C, H, W)): ``clean``,
            ``attack/<name>``, ``corruption/<name>``, and their ``labels`` and predictions
            ``pred/<key>``.
    """

    n_images: int
    n_attack_images: int
    clean_accuracy: float
    noise: Curve
    blur: Curve
    attacks: dict[str, Curve]
    corruptions: dict[str, Curve]
    destruction: dict[str, Destruction]
    timings: dict[str, float]
    config: RobustnessConfig
    examples: dict[str, torch.Tensor] = field(repr=False, compare=False)

    @property
    def mean_corruption_accuracy(self) -> float:
        """Accuracy averaged over every corruption and severity (NaN with none)."""
        means = [c.mean for c in self.corruptions.values() if not math.isnan(c.mean)]
        return sum(means) / len(means) if means else math.nan

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON (examples left out)."""
        out = asdict(self)
        out.pop("examples")
        out["mean_corruption_accuracy"] = self.mean_corruption_accuracy
        return out


def destruction_rate(
    model: nn.Module,
    clean: torch.Tensor,
    adversarial: torch.Tensor,
    labels: torch.Tensor,
    transform: Callable[[torch.Tensor], torch.Tensor],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> tuple[float, int]:
    """Kurakin's destruction rate of ``transform`` on adversarial examples.

    Args:
        model: Pixel-space classifier.
        clean: Clean images (N, C, H, W) in [0, 1].
        adversarial: Their adversarial versions, same shape.
        labels: True labels (N,).
        transform: Maps a batch of pixels to transformed pixels.
        batch_size: Images per forward pass.

    Returns:
        ``(rate, fooled)``: the share of the ``fooled`` images (right when clean, wrong when
        adversarial) that are right after the transformation; NaN when none was fooled.
    """
    labels = labels.to(model_device(model))
    ok = predict(model, clean, batch_size=batch_size) == labels  # (N,)
    fooled = ok & (predict(model, adversarial, batch_size=batch_size) != labels)  # (N,)
    restored = predict(model, transform(adversarial), batch_size=batch_size) == labels  # (N,)
    return _share_restored(fooled, restored), int(fooled.sum())


def _share_restored(fooled: torch.Tensor, restored: torch.Tensor) -> float:
    """Share of the ``fooled`` images (bool (N,)) that are ``restored`` (bool (N,)); NaN if
    none was fooled."""
    count = int(fooled.sum())
    return (fooled & restored).sum().item() / count if count else math.nan


def _accuracy(model: nn.Module, pixels: torch.Tensor, labels: torch.Tensor, batch: int) -> float:
    if len(labels) == 0:
        return math.nan
    return (predict(model, pixels, batch_size=batch) == labels).float().mean().item()


def evaluate_robustness(
    model: nn.Module,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    config: RobustnessConfig = RobustnessConfig(),
    *,
    progress: bool = False,
) -> RobustnessReport:
    """Measure the robustness report of a pixel-space model.

    Args:
        model: Pixel-space classifier (a :class:`~metaqnn.evaluation.pixels.PixelModel`); it is
            left as it was (mode and parameters).
        pixels: Clean test images in [0, 1], shape (N, C, H, W).
        labels: Their labels, shape (N,).
        config: What to measure.
        progress: Show tqdm bars.

    Returns:
        The :class:`RobustnessReport`.

    Raises:
        ConfigError: If there are no images or they are not pixels in [0, 1].
    """
    if len(pixels) == 0 or len(pixels) != len(labels):
        raise ConfigError(f"need images and labels, got {len(pixels)} and {len(labels)}")
    if pixels.min() < 0 or pixels.max() > 1:
        raise ConfigError("robustness inputs must be pixels in [0, 1]; denormalise them first")
    device = model_device(model)
    pixels, labels = pixels.to(device), labels.to(device)
    kind = config.corruption_kind or image_kind(pixels)
    config = replace(config, corruption_kind=kind)  # the report names the levels used
    batch, seed = config.batch_size, config.seed
    timings: dict[str, float] = {}
    start = time.perf_counter()
    fast = inference_model(model, pixels[:batch]) if config.fast_inference else model
    timings["fast inference" if fast is not model else "exact inference"] = (
        time.perf_counter() - start
    )
    acc = lambda x: _accuracy(fast, x, labels[: len(x)], batch)  # noqa: E731
    start = time.perf_counter()
    clean = acc(pixels)

    def sweep(values: tuple[float, ...], apply: Callable[[float], torch.Tensor]) -> Curve:
        return Curve(tuple(values), tuple(acc(apply(v)) for v in values))

    noise = sweep(
        config.noise_strengths,
        lambda b: gaussian_noise(pixels, b, torch.Generator().manual_seed(seed)),
    )
    blur = sweep(config.blur_strengths, lambda b: gaussian_blur(pixels, b))
    timings["clean, noise and blur"] = time.perf_counter() - start

    start = time.perf_counter()
    corruptions: dict[str, Curve] = {}
    k = min(config.examples, len(pixels))
    examples: dict[str, torch.Tensor] = {"labels": labels[:k].cpu()}

    def keep(key: str, x: torch.Tensor) -> None:  # predictions from the measured first batch
        examples[key] = x[:k].cpu()
        examples[f"pred/{key}"] = predict(fast, x[:batch], batch_size=batch)[:k].cpu()

    keep("clean", pixels)
    for name in tqdm(config.corruptions, desc="corruptions", disable=not progress, leave=False):
        curve = []
        for severity in SEVERITIES:
            corrupted = corrupt(pixels, name, severity, kind=kind, seed=seed)  # (N, C, H, W)
            # a severity too small for the image size (a blur of a fifth of a pixel on 8x8)
            # leaves the images as they were: NaN, reported as such, not as a flat line
            same = bool((corrupted - pixels).abs().max() <= 1e-6)
            curve.append(math.nan if same else acc(corrupted))
            if severity == 3:
                keep(f"corruption/{name}", corrupted)
        corruptions[name] = Curve(tuple(float(s) for s in SEVERITIES), tuple(curve))
    timings["corruptions"] = time.perf_counter() - start

    start = time.perf_counter()
    n_attack = len(pixels) if config.attack_images is None else min(config.attack_images,
                                                                     len(pixels))  # fmt: skip
    xa, ya = pixels[:n_attack], labels[:n_attack]  # (M, C, H, W), (M,)
    clean_attacked = acc(xa)
    cache: dict[tuple[str, float], torch.Tensor] = {}

    def adversarial(name: str, eps: float) -> torch.Tensor:
        if (name, eps) not in cache:
            attack = AttackConfig(epsilon=eps, beta=config.beta)
            cache[(name, eps)] = run_attack(name, model, xa, ya, attack, batch_size=batch,
                                            seed=seed, progress=progress)  # fmt: skip
        return cache[(name, eps)]

    attacks: dict[str, Curve] = {}
    for name in tqdm(config.attacks, desc="attacks", disable=not progress, leave=False):
        epsilons = tuple(sorted({0.0, *config.epsilons}))
        attacks[name] = Curve(
            epsilons,
            tuple(clean_attacked if eps == 0 else acc(adversarial(name, eps)) for eps in epsilons),
        )
    timings["attacks"] = time.perf_counter() - start

    start = time.perf_counter()
    destruction: dict[str, Destruction] = {}
    right = predict(fast, xa, batch_size=batch) == ya  # (M,) right when clean
    for name in config.destruction_attacks:
        adv = adversarial(name, config.destruction_epsilon)  # (M, C, H, W)
        keep(f"attack/{name}", adv)
        fooled = right & (predict(fast, adv, batch_size=batch) != ya)  # (M,)
        rates = {
            transform: tuple(
                _share_restored(fooled, predict(
                    fast, corrupt(adv, transform, s, kind=kind, seed=seed), batch_size=batch
                ) == ya)
                for s in SEVERITIES
            )
            for transform in config.destruction_transforms
        }  # fmt: skip
        destruction[name] = Destruction(int(fooled.sum()), rates)
    for name in config.attacks:  # examples of the other attacks at the destruction radius
        if f"attack/{name}" not in examples and config.destruction_epsilon in config.epsilons:
            keep(f"attack/{name}", adversarial(name, config.destruction_epsilon))
    timings["destruction"] = time.perf_counter() - start

    return RobustnessReport(
        n_images=len(pixels), n_attack_images=n_attack, clean_accuracy=clean, noise=noise,
        blur=blur, attacks=attacks, corruptions=corruptions, destruction=destruction,
        timings=timings, config=config, examples=examples,
    )  # fmt: skip
