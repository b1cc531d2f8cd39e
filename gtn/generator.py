"""The GTN generator: noise + one-hot label -> a synthetic image in the data's normalised range.

As in Such et al. (2019): ``Linear(Z + K -> 1024) -> BN -> LeakyReLU(0.1) -> Linear(-> 128 *
(W/4)^2) -> BN -> LeakyReLU -> reshape (128, W/4, W/4) -> [2x nearest upsample, conv3x3 128->64,
BN, LeakyReLU] -> [2x upsample, conv3x3 64->C] -> tanh``, with weight normalisation on every
linear and conv layer. Batch norm always uses the statistics of the batch being generated (no
running statistics), in meta-training and in teaching alike. The tanh output is mapped onto
``[low, high]`` per channel, the range that pixels in [0, 1] take after the dataset's
normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


@dataclass(frozen=True)
class GeneratorConfig:
    """Shape and size of a :class:`Generator`."""

    channels: int = 1
    """Image channels."""
    image_size: int = 28
    """Image height = width; must be a multiple of 4 (8, 28 and 32 all are)."""
    num_classes: int = 10
    """Classes of the one-hot label input."""
    noise_dim: int = 128
    """Dimension of the Gaussian noise input."""
    hidden: int = 1024
    """Width of the first linear layer."""
    conv_channels: tuple[int, int] = (128, 64)
    """Channels of the two upsampling stages."""
    leak: float = 0.1
    """LeakyReLU slope."""
    low: tuple[float, ...] = (-1.0,)
    """Per-channel lower end of the output range (normalised value of pixel 0)."""
    high: tuple[float, ...] = (1.0,)
    """Per-channel upper end of the output range (normalised value of pixel 1)."""

    def __post_init__(self) -> None:
        if self.image_size % 4 or self.image_size < 4:
            raise ValueError(
                f"GeneratorConfig.image_size={self.image_size}: expected a multiple of 4"
            )
        for name in ("channels", "num_classes", "noise_dim", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"GeneratorConfig.{name}={getattr(self, name)}: must be >= 1")
        for name in ("low", "high"):
            if len(getattr(self, name)) not in (1, self.channels):
                raise ValueError(
                    f"GeneratorConfig.{name}={getattr(self, name)}: expected 1 or "
                    f"{self.channels} values"
                )
        if any(lo >= hi for lo, hi in zip(self.low, self.high, strict=False)):
            raise ValueError(f"GeneratorConfig: low {self.low} must be below high {self.high}")

    @property
    def input_dim(self) -> int:
        """Noise dimension plus one-hot label dimension."""
        return self.noise_dim + self.num_classes


class Generator(nn.Module):
    """Maps noise (B, Z) and labels (B,) to images (B, C, W, W) in ``[low, high]`` per channel."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        side = config.image_size // 4
        c1, c2 = config.conv_channels
        self.fc = nn.Sequential(
            weight_norm(nn.Linear(config.input_dim, config.hidden)),
            nn.BatchNorm1d(config.hidden, track_running_stats=False),
            nn.LeakyReLU(config.leak),
            weight_norm(nn.Linear(config.hidden, c1 * side * side)),
            nn.BatchNorm1d(c1 * side * side, track_running_stats=False),
            nn.LeakyReLU(config.leak),
        )
        self.conv = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            weight_norm(nn.Conv2d(c1, c2, 3, padding=1)),
            nn.BatchNorm2d(c2, track_running_stats=False),
            nn.LeakyReLU(config.leak),
            nn.Upsample(scale_factor=2, mode="nearest"),
            weight_norm(nn.Conv2d(c2, config.channels, 3, padding=1)),
        )
        low = torch.tensor(config.low, dtype=torch.float32).expand(config.channels)
        high = torch.tensor(config.high, dtype=torch.float32).expand(config.channels)
        self.register_buffer("center", ((high + low) / 2).view(1, -1, 1, 1).clone())
        self.register_buffer("half_range", ((high - low) / 2).view(1, -1, 1, 1).clone())
        self._side = side

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Generate images.

        Args:
            noise: (B, noise_dim) Gaussian noise (or learned inputs).
            labels: (B,) integer labels, or (B, num_classes) label distributions.

        Returns:
            (B, channels, image_size, image_size) images in ``[low, high]``.
        """
        if labels.dim() == 1:
            labels = F.one_hot(labels, self.config.num_classes).to(noise.dtype)  # (B, K)
        h = self.fc(torch.cat([noise, labels], dim=1))  # (B, c1 * side^2)
        h = h.view(-1, self.config.conv_channels[0], self._side, self._side)
        x = self.conv(h)  # (B, C, W, W)
        return self.center + self.half_range * torch.tanh(x)
