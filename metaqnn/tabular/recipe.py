"""The fixed training recipe of a tabular benchmark: what data, how long, which optimiser.

:data:`BENCH_RECIPES` maps a name to a frozen :class:`BenchRecipe`. ``short`` is the recipe of
the shipped MNIST table: chosen from measured cost so that every architecture of
``mnist-bench`` times 2 seeds fits about 3 CPU-hours on a 2-core machine, while accuracies
still spread (about 0.2 for the GAP heads to 0.93; see README "bench"). ``smoke`` is for tests
and trials of the machinery only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from metaqnn.core.data import Dataset, Split, load_dataset
from metaqnn.core.nets import NetConfig
from metaqnn.core.training import TrainConfig
from metaqnn.errors import ConfigError


@dataclass(frozen=True)
class BenchRecipe:
    """How every (architecture, seed) of a table is trained and scored.

    Data: the dataset's official training images minus ``val_size`` held out (a permutation
    seeded by ``split_seed``); the model trains on the first ``train_size`` of the rest, at
    full resolution, normalised with the statistics of the whole remaining training set.
    Validation accuracy is measured on the first ``val_eval_size`` held-out images (the same
    images score the GTN reward), test accuracy on the first ``test_size`` official test
    images. Training is :func:`metaqnn.core.training.train_architecture` with the fields below
    (Adam with L2 weight decay; the seed of a run sets initialisation, dropout and shuffling).
    """

    name: str
    """The key in :data:`BENCH_RECIPES`."""
    description: str
    """One line on what it is."""
    train_size: int
    """Training images (the first ones of the training split)."""
    val_eval_size: int
    """Held-out validation images scored (the first ones)."""
    test_size: int
    """Official test images scored (the first ones)."""
    val_size: int = 5000
    """Training images held out for validation."""
    split_seed: int = 0
    """Seed of the permutation that picks the held-out images."""
    epochs: int = 1
    """Passes over the training images."""
    batch_size: int = 64
    """Mini-batch size."""
    lr: float = 1e-3
    """Adam's learning rate (constant: one epoch never reaches the step decay)."""
    weight_decay: float = 5e-4
    """L2 weight decay."""
    max_restarts: int = 0
    """Restarts of a model at chance after its first epoch (0: none; the cost stays flat)."""
    norm: str = "batch"
    """Normalisation of conv and FC layers (``NetConfig.norm``)."""
    dropout: bool = True
    """MetaQNN's dropout schedule (``NetConfig.dropout``)."""
    gtn_steps: int | None = None
    """Inner steps of the GTN reward (None: all the teacher learned)."""

    def __post_init__(self) -> None:
        for name in ("train_size", "val_eval_size", "test_size", "val_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"BenchRecipe.{name}={value!r}: expected a positive integer")
        if self.val_eval_size > self.val_size:
            raise ConfigError(
                f"BenchRecipe.val_eval_size={self.val_eval_size} is over val_size={self.val_size}"
            )
        self.train_config(0)  # fail now on a bad value
        self.net_config()

    def train_config(self, seed: int) -> TrainConfig:
        """This recipe as a ``TrainConfig`` for one seed."""
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            max_restarts=self.max_restarts,
            seed=seed,
        )

    def net_config(self) -> NetConfig:
        """How architectures become modules under this recipe."""
        return NetConfig(norm=self.norm, dropout=self.dropout)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for the store's identity and the table's header)."""
        return dataclasses.asdict(self)


#: Name -> recipe.
BENCH_RECIPES: dict[str, BenchRecipe] = {
    "short": BenchRecipe(
        "short",
        "1 epoch of Adam (lr 1e-3, L2 5e-4, batch 64, no restarts) on 4,000 training images "
        "at 28x28, batch norm and MetaQNN's dropout; val on 1,000 held-out images, test on the "
        "first 1,000 test images",
        train_size=4000,
        val_eval_size=1000,
        test_size=1000,
    ),
    "smoke": BenchRecipe(
        "smoke",
        "tests and trials of the machinery only: 64 training images, 1 epoch, 64 val and test",
        train_size=64,
        val_eval_size=64,
        test_size=64,
        val_size=64,
        batch_size=32,
    ),
}


def get_recipe(name: str) -> BenchRecipe:
    """A recipe by name.

    Raises:
        ConfigError: If ``name`` is not in :data:`BENCH_RECIPES` (listing them).
    """
    if name not in BENCH_RECIPES:
        raise ConfigError(f"unknown bench recipe {name!r}; choose from {sorted(BENCH_RECIPES)}")
    return BENCH_RECIPES[name]


@dataclass(frozen=True)
class BenchData:
    """The splits a recipe trains and scores on, and the dataset they come from."""

    dataset: Dataset
    train: Split
    val: Split
    test: Split


def load_bench_data(dataset: str, recipe: BenchRecipe, root: str | None = None) -> BenchData:
    """The recipe's subsets of ``dataset`` (on the CPU).

    Raises:
        ConfigError: If a subset asks for more images than the split holds.
        metaqnn.errors.DatasetNotFoundError: If the files are missing.
    """
    data = load_dataset(dataset, root=root, val_size=recipe.val_size, seed=recipe.split_seed)
    sizes = {
        "train_size": (recipe.train_size, data.train),
        "val_eval_size": (recipe.val_eval_size, data.val),
        "test_size": (recipe.test_size, data.test),
    }
    for name, (n, split) in sizes.items():
        if n > len(split):
            raise ConfigError(
                f"recipe {recipe.name!r}: {name}={n} is over the {len(split)} images of "
                f"{dataset}'s split"
            )
    return BenchData(
        dataset=data,
        train=_head(data.train, recipe.train_size),
        val=_head(data.val, recipe.val_eval_size),
        test=_head(data.test, recipe.test_size),
    )


def _head(split: Split, n: int) -> Split:
    return Split(split.x[:n], split.y[:n])
