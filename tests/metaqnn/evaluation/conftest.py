"""Fixtures of the evaluation tests: a tiny classifier trained for a few seconds on the digits
upsampled to 28x28 (so corruptions and attacks meet a model that has learned something), and a
small digits checkpoint for the command line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from envs.layers import Architecture
from metaqnn.core.checkpoint import save_checkpoint
from metaqnn.core.data import load_dataset
from metaqnn.core.nets import NetConfig
from metaqnn.core.training import TrainConfig, train_architecture
from metaqnn.evaluation.pixels import PixelModel

DIGITS_ARCH = "[C(8,3,1), P(2,2), FC(16), SM(10)]"


@dataclass(frozen=True)
class Trained:
    """A trained pixel-space model and held-out images it has not seen."""

    model: PixelModel
    pixels: torch.Tensor  # (N, 1, 28, 28) in [0, 1]
    labels: torch.Tensor  # (N,)


def _upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False).clamp(0, 1)


@pytest.fixture(scope="session")
def trained() -> Trained:
    """A small CNN (no batch-statistics norm) trained for a few seconds on digits at 28x28."""
    data = load_dataset("digits", val_size=0)
    train_x = _upsample(data.denormalize(data.train.x))  # (1500, 1, 28, 28)
    test_x = _upsample(data.denormalize(data.test.x))  # (297, 1, 28, 28)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(16 * 7 * 7, 10),
        )  # fmt: skip
        model = PixelModel(net, (0.3,), (0.35,))
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        gen = torch.Generator().manual_seed(0)
        for _ in range(2):
            for idx in torch.randperm(len(train_x), generator=gen).split(100):
                loss = F.cross_entropy(model(train_x[idx]), data.train.y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        opt.zero_grad(set_to_none=True)
    model.eval()
    return Trained(model, test_x, data.test.y)


@pytest.fixture(scope="session")
def digits_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of a tiny architecture trained 40 steps on digits (8x8)."""
    data = load_dataset("digits")
    arch = Architecture.parse(DIGITS_ARCH)
    config = TrainConfig(steps=40, batch_size=64, max_restarts=0)
    result = train_architecture(arch, data.train, data.val, config, net_config=NetConfig())
    path = tmp_path_factory.mktemp("ckpt") / "digits.pt"
    return save_checkpoint(
        path, architecture=arch, net_config=NetConfig(), train_config=config, dataset="digits",
        input_shape=data.spec.input_shape, state_dict=result.state_dict(), metrics={},
    )  # fmt: skip
