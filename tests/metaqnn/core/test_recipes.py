"""Tests of metaqnn.core.optim (optimizers, schedules) and metaqnn.core.recipes on tiny blobs."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import pytest
import torch
import torch.nn.functional as F

from envs.layers import Architecture
from metaqnn.core import training
from metaqnn.core.data import Split, iterate_batches
from metaqnn.core.nets import build_model
from metaqnn.core.optim import (
    OPTIMIZERS,
    SCHEDULES,
    Params,
    lr_at,
    make_optimizer,
    warmup_steps,
)
from metaqnn.core.recipes import RECIPES, Recipe, recipe_config
from metaqnn.core.training import TrainConfig, train_architecture
from metaqnn.errors import ConfigError

CLASSES = 4
ARCH = Architecture.parse(f"[C(8,3,1), P(2,2), FC(16), SM({CLASSES})]")
FAST = TrainConfig(epochs=3, batch_size=32, lr=3e-3, eval_batch_size=64)  # 8 steps an epoch


def _blobs(n: int, seed: int) -> Split:
    """Balanced Gaussian blobs as 1x8x8 images: one random mean image per class."""
    means = torch.randn(CLASSES, 1, 8, 8, generator=torch.Generator().manual_seed(99))
    noise = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    y = torch.arange(n) % CLASSES  # (n,)
    return Split(means[y] + noise, y)  # x: (n, 1, 8, 8)


TRAIN, VAL = _blobs(256, seed=1), _blobs(128, seed=2)


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _recorded_lrs(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Make training record the learning rate of every optimizer step it takes."""
    lrs: list[float] = []

    def recording(params: Params, lr: float, config: TrainConfig) -> torch.optim.Optimizer:
        optimizer = make_optimizer(params, lr, config)
        optimizer.register_step_pre_hook(lambda opt, *_: lrs.append(opt.param_groups[0]["lr"]))
        return optimizer

    monkeypatch.setattr(training, "make_optimizer", recording)
    return lrs


# --------------------------------------------------------------------------- the default path
def test_default_path_is_metaqnn_adam_with_step_decay_bit_for_bit():
    """The defaults train exactly as an explicit Adam + per-epoch step decay loop does."""
    config = TrainConfig(epochs=4, batch_size=32, lr_decay=0.5, lr_decay_epochs=2, max_restarts=0)
    result = train_architecture(ARCH, TRAIN, VAL, config)

    root = torch.Generator().manual_seed(config.seed)
    init_seed, shuffle_seed = torch.randint(2**62, (2,), generator=root).tolist()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        model = build_model(ARCH, in_channels=1, input_size=8)
        optimizer = torch.optim.Adam(
            model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=5e-4
        )
        shuffle = torch.Generator().manual_seed(shuffle_seed)
        for epoch in range(4):
            for group in optimizer.param_groups:
                group["lr"] = 1e-3 * 0.5 ** (epoch // 2)
            model.train()
            for x, y in iterate_batches(TRAIN, 32, shuffle=True, generator=shuffle, drop_last=True):
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    assert _same(result.state_dict(), model.state_dict())
    assert [h["lr"] for h in result.history] == [1e-3, 1e-3, 5e-4, 5e-4]


def test_default_fields_are_metaqnn():
    config = TrainConfig()
    assert (config.optimizer, config.schedule, config.label_smoothing) == ("adam", "step", 0.0)
    assert config.warmup_epochs is None
    assert warmup_steps(config, total=100, steps_per_epoch=10) == 0


# --------------------------------------------------------------------------- optimizers
@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, (torch.optim.Adam, {"weight_decay": 5e-4, "betas": (0.9, 0.999)})),
        ({"optimizer": "adamw", "weight_decay": 0.05}, (torch.optim.AdamW, {"weight_decay": 0.05})),
        ({"optimizer": "sgd"}, (torch.optim.SGD, {"momentum": 0.9, "nesterov": True})),
        (
            {"optimizer": "sgd", "momentum": 0.5, "nesterov": False},
            (torch.optim.SGD, {"momentum": 0.5, "nesterov": False}),
        ),
    ],
)
def test_make_optimizer_builds_the_registered_optimizer(overrides, expected):
    cls, settings = expected
    optimizer = make_optimizer([torch.nn.Parameter(torch.zeros(2))], 0.01, TrainConfig(**overrides))
    assert type(optimizer) is cls
    group = optimizer.param_groups[0]
    assert group["lr"] == 0.01 and {k: group[k] for k in settings} == settings
    assert set(OPTIMIZERS) == {"adam", "adamw", "sgd"}


@pytest.mark.parametrize(
    "overrides",
    [
        {"optimizer": "adamw"},
        {"optimizer": "sgd", "lr": 0.05},
        {"optimizer": "sgd", "lr": 0.05, "nesterov": False},
        {"schedule": "cosine"},
        {"schedule": "cosine", "warmup_epochs": 1},
        {"schedule": "onecycle"},
        {"schedule": "step", "warmup_epochs": 0.5},
        {"label_smoothing": 0.1},
    ],
)
def test_each_choice_trains_and_differs_from_the_default(overrides):
    base = train_architecture(ARCH, TRAIN, VAL, FAST)
    result = train_architecture(ARCH, TRAIN, VAL, dataclasses.replace(FAST, **overrides))
    assert result.status == "ok" and result.restarts == 0 and result.steps_run == 24
    assert result.val_accuracy > 0.7  # chance is 0.25; the decaying schedules end near 0.8
    assert not _same(result.state_dict(), base.state_dict())


def test_label_smoothing_raises_the_training_loss_not_the_validation_loss():
    smooth = train_architecture(ARCH, TRAIN, VAL, dataclasses.replace(FAST, label_smoothing=0.2))
    plain = train_architecture(ARCH, TRAIN, VAL, FAST)
    assert smooth.history[-1]["train_loss"] > plain.history[-1]["train_loss"]
    assert smooth.val_loss == pytest.approx(training.evaluate(smooth.model, VAL).loss)


# --------------------------------------------------------------------------- schedules
def test_cosine_is_set_every_step_over_the_budget(monkeypatch):
    lrs = _recorded_lrs(monkeypatch)
    result = train_architecture(ARCH, TRAIN, VAL, dataclasses.replace(FAST, schedule="cosine"))
    expected = [3e-3 * 0.5 * (1 + math.cos(math.pi * s / 24)) for s in range(24)]
    assert lrs == pytest.approx(expected, rel=1e-12)
    assert [h["lr"] for h in result.history] == pytest.approx([3e-3, 3e-3 * 0.75, 3e-3 * 0.25])


def test_cosine_with_warmup_at_known_steps(monkeypatch):
    lrs = _recorded_lrs(monkeypatch)
    config = dataclasses.replace(FAST, schedule="cosine", warmup_epochs=1)
    train_architecture(ARCH, TRAIN, VAL, config)
    assert len(lrs) == 24
    assert lrs[:8] == pytest.approx([3e-3 * (s + 1) / 8 for s in range(8)])  # linear warmup
    assert (lrs[8], lrs[12], lrs[16]) == pytest.approx((3e-3, 3e-3 * 0.5 * (1 + 0.5**0.5), 1.5e-3))


def test_onecycle_at_known_steps(monkeypatch):
    lrs = _recorded_lrs(monkeypatch)
    train_architecture(ARCH, TRAIN, VAL, dataclasses.replace(FAST, schedule="onecycle"))
    peak, start = 3e-3, 3e-3 / 25
    assert warmup_steps(dataclasses.replace(FAST, schedule="onecycle"), 24, 8) == 7  # 30%
    assert (lrs[0], lrs[7], lrs[23]) == pytest.approx((start, peak, start / 1e4))
    assert lrs[15] == pytest.approx(start / 1e4 + (peak - start / 1e4) / 2)  # half way down
    assert lrs.index(max(lrs)) == 7
    assert all(a < b for a, b in itertools.pairwise(lrs[:8]))  # up to the peak
    assert all(a > b for a, b in itertools.pairwise(lrs[7:]))  # then down


def test_onecycle_warmup_epochs_moves_the_peak():
    config = TrainConfig(schedule="onecycle", warmup_epochs=2)
    warmup = warmup_steps(config, total=100, steps_per_epoch=10)
    assert warmup == 20
    assert lr_at(config, 0.1, 20, 2, 100, warmup) == pytest.approx(0.1)
    assert lr_at(config, 0.1, 0, 0, 100, warmup) == pytest.approx(0.1 / 25)


def test_step_schedule_restarts_with_every_attempt_and_warmup_is_capped():
    config = TrainConfig(warmup_epochs=50)
    assert warmup_steps(config, total=10, steps_per_epoch=5) == 9
    assert lr_at(TrainConfig(), 0.4, 7, 11, 100, 0) == pytest.approx(0.4 * 0.2**2)
    assert set(SCHEDULES) == {"step", "cosine", "onecycle"}


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("optimizer", "rmsprop"), ("optimizer", None), ("optimizer", ["adam"]),
        ("schedule", "linear"), ("schedule", ""), ("momentum", 1.0), ("momentum", -0.1),
        ("momentum", math.nan), ("nesterov", 1), ("nesterov", "yes"), ("warmup_epochs", -1),
        ("warmup_epochs", math.inf), ("warmup_epochs", True), ("label_smoothing", 1.0),
        ("label_smoothing", -0.1), ("label_smoothing", False),
    ],
)  # fmt: skip
def test_bad_new_field_is_a_one_line_error_naming_field_and_value(field, value):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{field: value})
    message = str(info.value)
    assert f"TrainConfig.{field}={value!r}" in message and "\n" not in message


def test_unknown_choice_error_lists_the_choices():
    with pytest.raises(ConfigError, match="one of adam, adamw, sgd"):
        TrainConfig(optimizer="lamb")
    with pytest.raises(ConfigError, match="one of step, cosine, onecycle"):
        TrainConfig(schedule="poly")


def test_nesterov_sgd_needs_momentum():
    with pytest.raises(ConfigError, match=r"TrainConfig.momentum=0.0: Nesterov"):
        TrainConfig(optimizer="sgd", momentum=0.0)
    assert TrainConfig(optimizer="sgd", momentum=0.0, nesterov=False).momentum == 0.0
    assert TrainConfig(momentum=0.0).optimizer == "adam"  # Adam ignores momentum


# --------------------------------------------------------------------------- recipes
def test_metaqnn_recipe_is_the_default_config():
    assert recipe_config("metaqnn") == TrainConfig()
    assert recipe_config("metaqnn", epochs=3, seed=2) == TrainConfig(epochs=3, seed=2)
    assert RECIPES["metaqnn"].epochs == 20


def test_every_recipe_is_valid_named_and_round_trips_through_json():
    assert {"metaqnn", "strong"} <= set(RECIPES)
    for name, recipe in RECIPES.items():
        assert recipe.name == name and recipe.description and recipe.epochs > 0
        config = recipe_config(name, seed=5)
        assert (config.epochs, config.seed) == (recipe.epochs, 5)
        raw = json.loads(json.dumps(dataclasses.asdict(config)))  # as a checkpoint stores it
        assert TrainConfig(**raw) == config
    assert recipe_config("strong") != TrainConfig()


def test_strong_recipe_trains():
    config = dataclasses.replace(recipe_config("strong", epochs=2), batch_size=32)
    result = train_architecture(ARCH, TRAIN, VAL, config)
    assert result.status == "ok" and result.val_accuracy > 0.8


def test_unknown_recipe_is_a_one_line_error_listing_the_choices():
    with pytest.raises(ConfigError) as info:
        recipe_config("fancy")
    message = str(info.value)
    assert "'fancy'" in message and "metaqnn, strong" in message and "\n" not in message
    with pytest.raises(ConfigError, match=r"TrainConfig\.epochs=0"):
        recipe_config("strong", epochs=0)


def test_recipe_overrides_are_checked_and_read_only():
    with pytest.raises(ConfigError, match="unknown TrainConfig fields"):
        Recipe("bad", "typo", {"learning_rate": 0.1})
    with pytest.raises(ConfigError, match=r"TrainConfig\.optimizer='lamb'"):
        Recipe("bad", "bad value", {"optimizer": "lamb"})
    with pytest.raises(TypeError):
        RECIPES["strong"].overrides["lr"] = 1.0  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        RECIPES["strong"].epochs = 3  # type: ignore[misc]
