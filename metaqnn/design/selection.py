"""How the final phase measures the models it picks the winner from.

With ``folds`` below 2 each model trains on the training split and is scored on the
validation split (MetaQNN's way). On a small dataset that split is too small to tell good
models apart: on digits, 20 of 48 architectures reach 99.0 % or more on its 300 images
(experiments/RESULTS.md). With ``folds`` = k of 2 or more, each model is cross-validated
instead: k trainings, each on the training and validation images less one fold, scored on that
fold, so every labelled image is held out once (1,500 predictions on digits instead of 300).
Each model is then refitted on all of them, and that refit is the model tested and saved.
The hand-designed baselines go through the same steps, so they are still trained the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch

from envs.layers import Architecture
from metaqnn.core.data import Dataset, Split
from metaqnn.core.nets import NetConfig
from metaqnn.core.training import TrainConfig, TrainResult, train_architecture


def selects_by_folds(folds: int) -> bool:
    """Whether ``folds`` asks for cross-validation (2 or more) rather than the validation split."""
    return folds >= 2


def merged(data: Dataset) -> Split:
    """The training and validation images together (the data of a refit)."""
    return Split(torch.cat([data.train.x, data.val.x]), torch.cat([data.train.y, data.val.y]))


def fold_indices(n: int, folds: int, seed: int) -> list[torch.Tensor]:
    """``folds`` disjoint index sets covering ``range(n)``, from a permutation seeded by
    ``seed``; their sizes differ by at most one."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return [order[i::folds] for i in range(folds)]


def training_passes(data: Dataset, folds: int) -> float:
    """Passes over ``data.train`` that measuring one model costs, relative to one epoch: 1
    with the validation split; with k folds, k trainings on (k - 1) / k of the training and
    validation images plus a refit on all of them, that is k times their number over the
    training split's."""
    if not selects_by_folds(folds):
        return 1.0
    return folds * (len(data.train) + len(data.val)) / len(data.train)


@dataclass(frozen=True)
class Measured:
    """A model measured for selection."""

    result: TrainResult
    """The model that is tested and saved: trained on the training split, or the refit."""
    selection_accuracy: float
    """What the winner is picked by: validation accuracy, or the cross-validated accuracy
    (held-out images classified correctly over all of them; a fold whose training failed
    counts as all wrong)."""
    train_size: int
    """Images the tested model trained on."""
    fold_accuracies: tuple[float, ...] = ()
    """Each fold's held-out accuracy (NaN where its training failed); empty without folds."""


def measure(arch: Architecture, data: Dataset, config_for: Callable[[int], TrainConfig],
            net: NetConfig, device: torch.device | str, *, folds: int,
            progress: bool = False) -> Measured:  # fmt: skip
    """Train ``arch`` for selection: on the training split, scored on the validation split,
    or cross-validated over ``folds`` folds of training and validation images and refitted on
    all of them.

    ``config_for(n)`` is the recipe for a training set of ``n`` images (a budget of steps
    counts them). Fold ``i`` trains with the recipe's seed plus ``i + 1``; the folds come from
    the recipe's seed, so every model of a run sees the same folds. A refit has no held-out
    images: its own training images stand in as the split that divergence is checked on.
    """
    if not selects_by_folds(folds):
        config = config_for(len(data.train))
        result = train_architecture(arch, data.train, data.val, config, net_config=net,
                                    device=device, progress=progress)  # fmt: skip
        return Measured(result, result.val_accuracy, len(data.train))
    pool = merged(data)
    n = len(pool)
    correct, accuracies = 0, []
    for i, held in enumerate(fold_indices(n, folds, config_for(n).seed)):
        keep = torch.ones(n, dtype=torch.bool, device=pool.y.device)
        keep[held.to(pool.y.device)] = False
        train, test = Split(pool.x[keep], pool.y[keep]), Split(pool.x[~keep], pool.y[~keep])
        base = config_for(len(train))
        config = dataclasses.replace(base, seed=base.seed + i + 1)
        fold = train_architecture(arch, train, test, config, net_config=net, device=device)
        ok = fold.status == "ok"
        accuracies.append(fold.val_accuracy if ok else float("nan"))
        correct += round(fold.val_accuracy * len(test)) if ok else 0
    refit = train_architecture(arch, pool, pool, config_for(n), net_config=net, device=device,
                               progress=progress)  # fmt: skip
    return Measured(refit, correct / n, n, tuple(accuracies))
