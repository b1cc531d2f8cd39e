"""Tests of metaqnn.core.training on tiny synthetic data (CPU, a few seconds)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from envs.layers import Architecture, ArchitectureError
from metaqnn.core.data import Split
from metaqnn.core.nets import NetConfig, build_model
from metaqnn.core.training import EvalResult, TrainConfig, evaluate, train_architecture, train_model
from metaqnn.errors import ConfigError

CLASSES = 4
ARCH = Architecture.parse(f"[C(8,3,1), P(2,2), FC(16), SM({CLASSES})]")
FAST = TrainConfig(epochs=3, batch_size=32, lr=3e-3, eval_batch_size=64)


def _blobs(n: int, seed: int, classes: int = CLASSES) -> Split:
    """Balanced Gaussian blobs as 1x8x8 images: one random mean image per class."""
    means = torch.randn(classes, 1, 8, 8, generator=torch.Generator().manual_seed(99))
    noise = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    y = torch.arange(n) % classes  # (n,)
    return Split(means[y] + noise, y)  # x: (n, 1, 8, 8)


TRAIN, VAL = _blobs(256, seed=1), _blobs(128, seed=2)


class _Constant(nn.Module):
    """A model stuck at chance: all-zero logits (argmax is class 0), or NaN logits."""

    def __init__(self, value: float = 0.0) -> None:
        super().__init__()
        self.value = value
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((len(x), CLASSES), self.value) * self.w  # (N, classes)


class _NanAfter(nn.Module):
    """A real net whose training forward passes return NaN after ``steps`` of them."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.net = build_model(ARCH, in_channels=1, input_size=8)
        self.steps, self.calls = steps, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += self.training
        logits = self.net(x)  # (N, classes)
        return logits * math.nan if self.calls > self.steps else logits


def test_small_net_learns_separable_blobs():
    result = train_architecture(ARCH, TRAIN, VAL, FAST)
    assert result.status == "ok" and result.reason == ""
    assert result.val_accuracy >= 0.9
    assert (result.epochs_run, result.steps_run, result.restarts) == (3, 24, 0)
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert result.history[-1]["val_acc"] == result.val_accuracy
    assert not result.model.training
    assert evaluate(result.model, VAL, batch_size=50).accuracy == result.val_accuracy


def test_same_seed_same_result_and_global_rng_untouched():
    state = torch.get_rng_state()
    a = train_architecture(ARCH, TRAIN, VAL, FAST)  # batch norm and dropout on
    assert torch.equal(torch.get_rng_state(), state)
    b = train_architecture(ARCH, TRAIN, VAL, FAST)
    c = train_architecture(ARCH, TRAIN, VAL, TrainConfig(**{**FAST.__dict__, "seed": 1}))
    assert a.val_accuracy == b.val_accuracy and a.history == b.history
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_evaluate_builds_no_graph():
    """2703af2 left ``@torch.no_grad()`` on ``steps_per_epoch``, so evaluation kept every
    batch's activations for the graph of its summed loss: 24 GB on MNIST's 5,000 validation
    images for one net of the design-fidelity run, which the kernel then killed."""
    seen = []

    class Probe(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = build_model(ARCH, in_channels=1, input_size=8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(torch.is_grad_enabled())
            return self.net(x)

    result = evaluate(Probe(), VAL, batch_size=16)
    assert seen and not any(seen) and torch.is_grad_enabled()
    assert 0.0 <= result.accuracy <= 1.0


def test_nan_model_diverges_without_raising():
    config = TrainConfig(epochs=2, batch_size=32, max_restarts=0)
    result = train_model(lambda: _Constant(math.nan), TRAIN, VAL, config)
    assert result.status == "diverged" and "not finite" in result.reason
    assert math.isnan(result.val_accuracy) and result.epochs_run == 1


def test_divergence_in_the_first_epoch_restarts_then_gives_up():
    config = TrainConfig(epochs=2, batch_size=32, max_restarts=2)
    result = train_model(lambda: _Constant(math.nan), TRAIN, VAL, config)
    assert result.status == "diverged" and result.restarts == 2
    assert result.total_steps == 3 * 8


def test_divergence_after_the_first_epoch_ends_training():
    result = train_model(lambda: _NanAfter(steps=10), TRAIN, VAL, FAST)
    assert result.status == "diverged" and result.restarts == 0
    assert result.epochs_run == 2 and "epoch 2" in result.reason


def test_late_restarts_restart_a_divergence_after_the_first_epoch():
    calls = []

    def factory() -> nn.Module:  # the first model diverges in epoch 2, the next one trains
        calls.append(1)
        return _NanAfter(steps=10 if len(calls) == 1 else 10**6)

    config = dataclasses.replace(FAST, late_restarts=True, max_restarts=1)
    result = train_model(factory, TRAIN, VAL, config)
    assert (result.status, result.restarts, len(calls)) == ("ok", 1, 2)
    assert "epoch 2" in result.restart_reasons[0] and result.epochs_run == 3
    assert result.total_steps == 2 * 8 + 3 * 8
    assert result.history[-1]["lr"] == pytest.approx(FAST.lr * 0.4)
    spent = dataclasses.replace(config, max_restarts=0)  # no restart left: diverged as before
    assert train_model(lambda: _NanAfter(steps=10), TRAIN, VAL, spent).status == "diverged"


def test_model_at_chance_restarts_with_lower_learning_rate():
    config = TrainConfig(epochs=2, batch_size=32, lr=1e-2, max_restarts=3)
    result = train_model(lambda: _Constant(0.0), TRAIN, VAL, config)
    assert result.status == "ok" and result.restarts == 3
    assert len(result.restart_reasons) == 3 and "chance" in result.restart_reasons[0]
    first_epochs = [h for h in result.history if h["epoch"] == 1]
    assert [h["lr"] for h in first_epochs] == pytest.approx([1e-2 * 0.4**k for k in range(4)])
    assert result.epochs_run == 2  # the last attempt trains to the end
    assert result.total_steps == 3 * 8 + 2 * 8
    assert result.val_accuracy == pytest.approx(1 / CLASSES)


def test_step_budget_within_the_first_epoch_skips_the_chance_check():
    config = TrainConfig(steps=5, batch_size=32, max_restarts=3)
    result = train_model(lambda: _Constant(0.0), TRAIN, VAL, config)
    assert (result.restarts, result.steps_run, result.status) == (0, 5, "ok")


def test_restart_from_a_fresh_model_can_recover():
    calls = []

    def factory() -> nn.Module:
        calls.append(1)
        return _Constant(0.0) if len(calls) == 1 else build_model(ARCH, in_channels=1, input_size=8)

    result = train_model(factory, TRAIN, VAL, FAST)
    assert len(calls) == 2 and result.restarts == 1
    assert result.val_accuracy > 0.5  # well above chance (0.25) at the lower learning rate
    assert result.history[1]["lr"] == pytest.approx(FAST.lr * 0.4)


@pytest.mark.parametrize(("steps", "epochs_run"), [(5, 1), (11, 2), (16, 2)])
def test_step_budget_is_honoured(steps, epochs_run):
    config = TrainConfig(epochs=99, steps=steps, batch_size=32)
    result = train_architecture(ARCH, TRAIN, VAL, config)
    assert (result.steps_run, result.total_steps, result.epochs_run) == (steps, steps, epochs_run)
    assert len(result.history) == epochs_run


def test_learning_rate_decays_in_steps():
    config = TrainConfig(epochs=5, batch_size=128, lr=1e-3, lr_decay=0.5, lr_decay_epochs=2)
    result = train_architecture(ARCH, TRAIN, VAL, config)
    lrs = [h["lr"] for h in result.history]
    assert lrs == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4])


def test_evaluate_zero_logits_and_restores_mode():
    model = _Constant(0.0).train()
    result = evaluate(model, VAL, batch_size=50)
    assert result == EvalResult(accuracy=pytest.approx(0.25), loss=pytest.approx(math.log(4)))
    assert model.training


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0), ("steps", 0), ("batch_size", 1.5), ("lr", -1.0), ("lr", math.nan),
        ("betas", (0.9, 1.0)), ("betas", (0.9,)), ("eps", 0), ("weight_decay", -1e-4),
        ("lr_decay", 0.0), ("lr_decay", 1.5), ("lr_decay_epochs", 0), ("max_restarts", -1),
        ("restart_lr_factor", 0), ("chance_tolerance", 1.0), ("eval_batch_size", 0),
        ("seed", -1), ("epochs", True), ("max_restarts", False), ("seed", 0.0),
        ("precision", "fp16"),
    ],
)  # fmt: skip
def test_bad_train_config_names_field_and_value(field, value):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{field: value})
    assert field in str(info.value) and repr(value) in str(info.value)


def test_betas_from_json_list_become_a_tuple():
    assert TrainConfig(betas=[0.5, 0.9]).betas == (0.5, 0.9)


def test_unbuildable_or_non_square_input_fails_before_training():
    with pytest.raises(ArchitectureError, match="layer 0"):
        train_architecture(Architecture.parse("[C(8,9,1), SM(4)]"), TRAIN, VAL, FAST)
    wide = Split(torch.zeros(8, 1, 8, 6), torch.zeros(8, dtype=torch.int64))
    with pytest.raises(ConfigError, match="square"):
        train_architecture(ARCH, wide, wide, FAST)
    with pytest.raises(ConfigError, match="empty"):
        train_model(lambda: _Constant(0.0), Split(TRAIN.x[:0], TRAIN.y[:0]), VAL, FAST)


def test_progress_bar_and_weight_norm_learner(capsys):
    config = TrainConfig(epochs=1, batch_size=32, lr=3e-3)
    result = train_architecture(
        ARCH, TRAIN, VAL, config, net_config=NetConfig.gtn_learner(), progress=True
    )
    assert result.status == "ok" and result.steps_run == 8
    assert "attempt 0" in capsys.readouterr().err


def test_bf16_autocast_trains_keeps_fp32_weights_and_is_seeded():
    bf16 = dataclasses.replace(FAST, precision="bf16")
    a = train_architecture(ARCH, TRAIN, VAL, bf16)
    b = train_architecture(ARCH, TRAIN, VAL, bf16)
    fp32 = train_architecture(ARCH, TRAIN, VAL, FAST)
    assert a.status == "ok" and a.val_accuracy > 0.8  # chance is 0.25
    assert all(p.dtype == torch.float32 for p in a.model.parameters())
    assert a.val_accuracy == b.val_accuracy and a.history == b.history
    assert a.history != fp32.history  # the passes really ran in bf16
