"""The tabular benchmark of a MetaQNN space: every architecture trained with one recipe.

* :mod:`~metaqnn.tabular.recipe`: the fixed training recipe (:data:`BENCH_RECIPES`);
* :mod:`~metaqnn.tabular.store`: the resumable sqlite store of a build folder;
* :mod:`~metaqnn.tabular.measure`: one unit of work (a run, a GTN score);
* :mod:`~metaqnn.tabular.build`: ``metaqnn bench build``;
* :mod:`~metaqnn.tabular.export`: ``metaqnn bench export``, the shipped file.

The file's format and the environment that reads it are :mod:`envs.bench` (numpy only).
"""

from metaqnn.tabular.build import BuildSummary, build_table
from metaqnn.tabular.export import ExportSummary, export_table
from metaqnn.tabular.measure import BuildJob
from metaqnn.tabular.recipe import BENCH_RECIPES, BenchRecipe, get_recipe
from metaqnn.tabular.store import BenchStore

__all__ = [
    "BENCH_RECIPES",
    "BenchRecipe",
    "BenchStore",
    "BuildJob",
    "BuildSummary",
    "ExportSummary",
    "build_table",
    "export_table",
    "get_recipe",
]
