"""Named final-training recipes: :data:`RECIPES` maps a name to a :class:`Recipe`, and
:func:`recipe_config` turns one into a :class:`~metaqnn.core.training.TrainConfig`.

``metaqnn`` is MetaQNN's recipe exactly (``TrainConfig()``, 20 epochs); ``strong`` is the
default for training designed and hand-designed networks to the end, chosen by validation
accuracy on MNIST (see :data:`STRONG`). Neither augments the data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from metaqnn.core.training import TrainConfig
from metaqnn.errors import ConfigError


@dataclass(frozen=True)
class Recipe:
    """A named training recipe: ``TrainConfig`` fields that differ from MetaQNN's.

    Attributes:
        name: The key in :data:`RECIPES`.
        description: One line on what it is.
        overrides: ``TrainConfig`` fields and their values (``epochs`` and ``seed`` are set
            by :meth:`config`); read-only.
        epochs: Default passes over the training split.
    """

    name: str
    description: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    epochs: int = 20

    def __post_init__(self) -> None:
        known = {f.name for f in fields(TrainConfig)} - {"epochs", "seed"}
        unknown = sorted(set(self.overrides) - known)
        if unknown:
            raise ConfigError(f"Recipe {self.name!r}: unknown TrainConfig fields {unknown}")
        object.__setattr__(self, "overrides", MappingProxyType(dict(self.overrides)))
        self.config()  # fail now on a bad value

    def config(self, *, epochs: int | None = None, seed: int = 0) -> TrainConfig:
        """This recipe as a ``TrainConfig``.

        Args:
            epochs: Passes over the training split; default the recipe's ``epochs``.
            seed: Root seed of initialisation, dropout and shuffling.

        Returns:
            The config (validated).
        """
        return TrainConfig(
            **self.overrides, epochs=self.epochs if epochs is None else epochs, seed=seed
        )


METAQNN = Recipe(
    "metaqnn",
    "MetaQNN's recipe (Baker et al. 2017): Adam lr 1e-3 x0.2 every 5 epochs, L2 5e-4, "
    "batch 128, restarts at chance; 20 epochs",
)
"""``TrainConfig()`` exactly."""

STRONG = Recipe(
    "strong",
    "SGD (Nesterov momentum 0.9, lr 0.1, weight decay 5e-4) with a one-cycle schedule and "
    "label smoothing 0.1, batch 128, no augmentation, restarts at lr x0.4 on divergence; "
    "15 epochs",
    {
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-4,
        "schedule": "onecycle",
        "label_smoothing": 0.1,
        "late_restarts": True,
    },
    epochs=15,
)
"""The default final recipe of ``metaqnn design``. Chosen by validation accuracy on MNIST
(5,000 held-out images) with ``[C(32,3,1), C(64,3,1), P(2,2), FC(128), SM(10)]`` at 3 epochs
on the 2-core CPU: 0.9870 / 0.9856 (seeds 0 / 1) against 0.9862 / 0.9854 for AdamW + cosine,
0.9862 (seed 0) for the same SGD without label smoothing, and 0.9802 (seed 0) for MetaQNN's
recipe. A run that diverges (near the one-cycle peak, say) restarts from a fresh model at
0.4 times the learning rate, up to 5 times, instead of ending at chance (``late_restarts``)."""

#: Recipe name -> :class:`Recipe`.
RECIPES: dict[str, Recipe] = {r.name: r for r in (METAQNN, STRONG)}


def recipe_config(name: str, *, epochs: int | None = None, seed: int = 0) -> TrainConfig:
    """The ``TrainConfig`` of recipe ``name``.

    Args:
        name: A key of :data:`RECIPES`.
        epochs: Passes over the training split; default the recipe's.
        seed: Root seed of initialisation, dropout and shuffling.

    Returns:
        The config.

    Raises:
        ConfigError: If ``name`` is not a recipe, or ``epochs`` or ``seed`` is out of range.
    """
    recipe = RECIPES.get(name) if isinstance(name, str) else None
    if recipe is None:
        raise ConfigError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}")
    return recipe.config(epochs=epochs, seed=seed)
