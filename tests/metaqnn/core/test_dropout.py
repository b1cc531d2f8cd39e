"""FastDropout: the rate, the scale, the seed, eval mode, gradients, TorchScript."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from envs.layers import Architecture
from metaqnn.core.dropout import LANES, FastDropout, fast_dropout_mask, keep_threshold
from metaqnn.core.nets import build_model


@pytest.mark.parametrize("p", [0.1, 1 / 6, 0.25, 1 / 3, 0.5])
def test_mask_drops_at_the_rate_and_keeps_the_expectation(p):
    torch.manual_seed(0)
    mask = fast_dropout_mask([400, 500], p, torch.float32)  # 200,000 elements
    threshold = keep_threshold(p)
    assert abs(threshold / LANES - p) <= 0.5 / LANES  # the rate, rounded to 1/65536
    kept = mask[mask != 0]
    assert torch.all(kept == LANES / (LANES - threshold))  # the exact inverse keep probability
    drop = (mask == 0).double().mean().item()
    sd = (p * (1 - p) / mask.numel()) ** 0.5
    assert abs(drop - p) < 5 * sd
    assert abs(mask.double().mean().item() - 1.0) < 5 * sd / (1 - p)


def test_mask_of_odd_size_and_dtype():
    torch.manual_seed(1)
    mask = fast_dropout_mask([3, 5, 7], 0.5, torch.bfloat16)  # 105 elements: not a multiple of 4
    assert mask.shape == (3, 5, 7) and mask.dtype == torch.bfloat16
    assert set(mask.unique().tolist()) == {0.0, 2.0}


def test_same_seed_same_mask_other_seed_other_mask():
    x = torch.ones(64, 64)
    drop = FastDropout(0.3)
    torch.manual_seed(5)
    a = drop(x)
    torch.manual_seed(5)
    b = drop(x)
    torch.manual_seed(6)
    c = drop(x)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_eval_mode_and_zero_rate_are_the_identity():
    x = torch.randn(8, 4)
    assert torch.equal(FastDropout(0.5).eval()(x), x)
    assert torch.equal(FastDropout(0.0)(x), x)
    assert torch.equal(FastDropout(1.0)(x), torch.zeros_like(x))  # F.dropout's p = 1


def test_gradient_is_the_mask():
    torch.manual_seed(2)
    x = torch.randn(32, 32, requires_grad=True)
    y = FastDropout(0.25)(x)
    y.sum().backward()
    kept = y.detach() != 0
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], LANES / (LANES - 16384)))
    assert torch.all(x.grad[~kept] == 0)


def test_nets_use_it_and_it_scripts():
    arch = Architecture.parse("[C(4,3,1), C(4,3,1), FC(8), SM(3)]")
    model = build_model(arch, in_channels=1, input_size=6)
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert drops and all(type(m) is FastDropout for m in drops)
    x = torch.randn(2, 1, 6, 6)
    model.eval()
    scripted = torch.jit.script(model)
    assert torch.allclose(scripted(x), model(x))
    scripted.train()  # in TorchScript, training falls back to F.dropout (and still runs)
    assert scripted(x).shape == (2, 3)
