"""Proxies: epoch labels and the checkpointed constant-lr real-data run whose prefixes are the
short proxies."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from experiments.common.proxies import epoch_label, train_with_checkpoints
from metaqnn.core.data import Split
from metaqnn.errors import ConfigError


def _split(n: int, seed: int) -> Split:
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randn(n, 1, 4, 4, generator=g), torch.randint(0, 3, (n,), generator=g))


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))


@pytest.mark.parametrize(
    ("epochs", "label"), [(0.25, "1/4 epoch"), (0.3, "0.3 epoch"), (1.0, "1 epoch"),
                          (3.0, "3 epochs")],
)  # fmt: skip
def test_epoch_label(epochs, label):
    assert epoch_label(epochs) == label


def test_checkpoints_of_one_run_are_its_prefixes():
    """With a constant lr, the k-step proxy of a long run is exactly a k-step run."""
    train, score = _split(64, 0), _split(32, 1)
    kwargs = dict(lr=0.01, batch_size=8, weight_decay=5e-4, seed=3)
    long = train_with_checkpoints(_model(), train, score, [2, 9, 20], **kwargs)
    assert [r["step"] for r in long] == [2, 9, 20]
    assert all(0 <= r["accuracy"] <= 1 for r in long)
    assert long[0]["train_s"] <= long[1]["train_s"] <= long[2]["train_s"]
    assert long[0]["train_cpu_s"] <= long[1]["train_cpu_s"] <= long[2]["train_cpu_s"]
    assert all(r["score_s"] >= 0 and r["score_cpu_s"] >= 0 for r in long)
    short = train_with_checkpoints(_model(), train, score, [9], **kwargs)
    assert short[0]["accuracy"] == long[1]["accuracy"]
    assert short[0]["loss"] == pytest.approx(long[1]["loss"], rel=1e-6)
    other = train_with_checkpoints(_model(), train, score, [20], **{**kwargs, "seed": 4})
    assert other[0]["loss"] != pytest.approx(long[2]["loss"], rel=1e-6)  # the order matters


@pytest.mark.parametrize("checkpoints", [[], [0, 3], [3, 3], [5, 2]])
def test_checkpoints_must_be_increasing_positive(checkpoints):
    with pytest.raises(ConfigError, match="increasing positive"):
        train_with_checkpoints(_model(), _split(16, 0), _split(8, 1), checkpoints, lr=0.01,
                               batch_size=4, weight_decay=0.0, seed=0)  # fmt: skip
