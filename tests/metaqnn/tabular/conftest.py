"""A tiny build: two architectures of an 8x8 space, digits, a recipe of a few dozen images."""

from __future__ import annotations

import pytest

from envs.space import SearchSpace
from metaqnn.tabular.measure import BuildJob
from metaqnn.tabular.recipe import BenchRecipe

#: ``[C(2,3,1), SM(10)]`` and ``[SM(10)]``: two tiny models per seed.
TINY_SPACE = SearchSpace(
    name="tiny", input_size=8, max_depth=1, conv_filters=(2,), conv_kernels=(3,),
    pools=((2, 2),), fc_widths=(4,), size_bins=(4, 2), allow_gap=False,
)  # fmt: skip
TINY_RECIPE = BenchRecipe(
    "tiny", "tests: 32 digits images", train_size=32, val_eval_size=16, test_size=16,
    val_size=16, batch_size=16,
)  # fmt: skip


@pytest.fixture
def tiny_job() -> BuildJob:
    """Digits, the tiny recipe, no GTN column."""
    return BuildJob("digits", TINY_RECIPE, None)
