"""How the final phase measures its models: the validation split, or k-fold cross-validation
over training and validation images with a refit on all of them."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import pytest
import torch

import metaqnn.design.selection as selection
from envs.layers import Architecture
from metaqnn.core.data import Split
from metaqnn.core.nets import NetConfig
from metaqnn.core.training import TrainConfig
from metaqnn.design.pipeline import DesignConfig
from metaqnn.design.selection import fold_indices, measure, merged, training_passes
from metaqnn.errors import ConfigError

ARCH = Architecture.parse("[C(4,3,1), SM(4)]")
CONFIG = TrainConfig(epochs=2, batch_size=32, lr=3e-3, eval_batch_size=64, seed=3)


def _blobs(n: int, seed: int) -> Split:
    """Balanced Gaussian blobs of 4 classes as 1x8x8 images, well separated."""
    means = 3 * torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(99))
    noise = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    y = torch.arange(n) % 4
    return Split(means[y] + noise, y)


DATA = SimpleNamespace(train=_blobs(96, 1), val=_blobs(24, 2))


@pytest.mark.parametrize(("n", "k"), [(10, 3), (120, 5), (7, 7)])
def test_folds_cover_every_index_once_and_are_even(n, k):
    folds = fold_indices(n, k, seed=0)
    assert len(folds) == k
    assert sorted(torch.cat(folds).tolist()) == list(range(n))
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    assert all(torch.equal(a, b) for a, b in zip(folds, fold_indices(n, k, seed=0), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(folds, fold_indices(n, k, 1), strict=True))


def test_cross_validation_costs_k_trainings_on_all_labelled_images():
    assert training_passes(DATA, 0) == training_passes(DATA, 1) == 1.0
    assert training_passes(DATA, 5) == pytest.approx(5 * 120 / 96)


def test_without_folds_the_model_is_scored_on_the_validation_split():
    measured = measure(ARCH, DATA, lambda n: CONFIG, NetConfig(), "cpu", folds=0)
    assert measured.selection_accuracy == measured.result.val_accuracy
    assert measured.train_size == 96 and measured.fold_accuracies == ()


def test_cross_validation_scores_every_image_once_and_refits_on_all(monkeypatch):
    calls = []
    real = selection.train_architecture

    def spy(arch, train, val, config, **kwargs):
        calls.append((len(train), len(val), config.seed))
        return real(arch, train, val, config, **kwargs)

    monkeypatch.setattr(selection, "train_architecture", spy)
    sizes = []
    measured = measure(ARCH, DATA, lambda n: sizes.append(n) or CONFIG, NetConfig(), "cpu",
                       folds=3)  # fmt: skip
    # three folds of 120 images: train on 80, score on 40, seeds 4, 5, 6; then the refit
    assert calls == [(80, 40, 4), (80, 40, 5), (80, 40, 6), (120, 120, 3)]
    assert 80 in sizes and 120 in sizes  # the recipe is asked for each training's size
    assert measured.train_size == 120 and len(measured.fold_accuracies) == 3
    mean = sum(measured.fold_accuracies) / 3  # equal folds: the pooled accuracy is their mean
    assert measured.selection_accuracy == pytest.approx(mean)
    assert measured.selection_accuracy > 0.5  # learned: chance is 0.25
    assert len(merged(DATA)) == 120


def test_a_fold_whose_training_fails_counts_as_all_wrong(monkeypatch):
    real = selection.train_architecture

    def fail_fold_two(arch, train, val, config, **kwargs):
        result = real(arch, train, val, config, **kwargs)
        if config.seed == CONFIG.seed + 2:
            return dataclasses.replace(result, status="diverged", val_accuracy=math.nan)
        return result

    monkeypatch.setattr(selection, "train_architecture", fail_fold_two)
    measured = measure(ARCH, DATA, lambda n: CONFIG, NetConfig(), "cpu", folds=3)
    first, second, third = measured.fold_accuracies
    assert math.isnan(second)
    assert measured.selection_accuracy == pytest.approx((first + third) / 3)


def test_folds_and_finalists_default_to_the_preset_and_are_checked():
    digits, mnist = DesignConfig(dataset="digits"), DesignConfig(dataset="mnist")
    assert (digits.folds, digits.finalists) == (5, 5)
    assert (mnist.folds, mnist.finalists) == (0, 3)
    assert digits.plan().final_s == pytest.approx(0.55 * digits.budget_s)  # the preset's shares
    assert DesignConfig(dataset="digits", folds=0).folds == 0
    with pytest.raises(ConfigError, match="--folds -1"):
        DesignConfig(dataset="digits", folds=-1)


def test_a_run_from_before_cross_validation_resumes_as_it_began(tmp_path):
    from metaqnn.design.pipeline import DesignState

    state = DesignState.create(tmp_path, DesignConfig(dataset="digits", budget_s=300.0))
    assert state.data["config"]["shares"] == [0.2, 0.25, 0.55]  # stored as in force
    assert state.config.folds == 5
    old = {k: v for k, v in state.data["config"].items() if k != "folds"}
    state.data["config"] = {**old, "shares": None}  # what a run before 9ac9c03 stored
    assert state.config.folds == 0  # picked by the validation split, as it began
    assert state.config.plan().final_s == pytest.approx(0.4 * 300)  # the shares of its time
