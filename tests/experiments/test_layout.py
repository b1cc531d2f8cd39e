"""The shape of ``experiments/``: every module at its top is an experiment run through the
harness (a config file, ``Config`` and ``run``); experiments import only the harness and
``experiments.common``, never each other; shared code in ``experiments.common`` imports no
experiment either (imports under ``if TYPE_CHECKING:`` aside)."""

from __future__ import annotations

import ast
import importlib
import tomllib
from pathlib import Path

import pytest

from experiments.harness import CONFIG_DIR, EXPERIMENTS_DIR, experiment_names

#: Modules at the top of ``experiments/`` that are not experiments.
NOT_EXPERIMENTS = {"__init__", "__main__", "harness"}


def _project_imports(path: Path) -> set[str]:
    """The ``experiments.*`` modules ``path`` imports, outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text())
    skip = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for child in ast.walk(stmt)
    }
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names
                                    if node.module == "experiments"}  # fmt: skip
        elif isinstance(node, ast.ImportFrom) and node.level:
            out.add("experiments.<relative import>")
    return {m for m in out if m == "experiments" or m.startswith("experiments.")}


def _allowed(module: str) -> bool:
    return module in ("experiments.harness", "experiments.common") or module.startswith(
        "experiments.common."
    )


def test_every_top_level_module_is_an_experiment_with_a_config():
    modules = {p.stem for p in EXPERIMENTS_DIR.glob("*.py")} - NOT_EXPERIMENTS
    assert modules == set(experiment_names()), "each experiments/NAME.py needs configs/NAME.toml"


@pytest.mark.parametrize("name", experiment_names())
def test_experiment_goes_through_the_harness(name):
    module = importlib.import_module(f"experiments.{name}")
    assert callable(module.run) and isinstance(module.Config, type)
    assert isinstance(tomllib.loads((CONFIG_DIR / f"{name}.toml").read_text())["quick"], dict)
    assert "argparse" not in (EXPERIMENTS_DIR / f"{name}.py").read_text()


@pytest.mark.parametrize(
    "path",
    sorted([*(p for p in EXPERIMENTS_DIR.glob("*.py") if p.stem not in NOT_EXPERIMENTS),
            *(EXPERIMENTS_DIR / "common").glob("*.py")]),
    ids=lambda p: str(p.relative_to(EXPERIMENTS_DIR)),
)  # fmt: skip
def test_experiments_import_only_the_harness_and_common(path):
    """(The runner and the harness load experiments by name: ``importlib``.)"""
    wrong = sorted(m for m in _project_imports(path) if not _allowed(m))
    assert not wrong, f"{path.name} imports {wrong}"
