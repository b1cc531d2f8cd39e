"""The shape of the house, checked: no import circles, imports only down the layers of
``ARCHITECTURE.md`` (``envs`` <- ``metaqnn`` -> ``gtn``; ``experiments`` and ``bench`` on top),
few modules at the top of ``metaqnn/``, and no module over 450 lines.

The import graph is read from the source with :mod:`ast` (every ``import`` statement, those
inside functions included, except under ``if TYPE_CHECKING:``), so a lazy import does not hide
a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("envs", "gtn", "metaqnn")
MAX_LINES = 450
MAX_TOP_LEVEL_MODULES = 8

#: What each top-level package may import from the project.
ALLOWED = {
    "envs": {"envs"},
    "gtn": {"gtn"},
    "metaqnn": {"envs", "gtn", "metaqnn"},
}

#: Rooms of ``metaqnn`` from the bottom up: a module may import its own room and rooms below.
ROOMS = [
    {"metaqnn.errors", "metaqnn.markdown", "metaqnn.runinfo", "metaqnn.runlock"},
    {"metaqnn.core"},
    {"metaqnn.evaluation", "metaqnn.teacher"},
    {"metaqnn.rewards", "metaqnn.learned_optimizer"},
    {"metaqnn.search", "metaqnn.tabular"},
    {"metaqnn.demo", "metaqnn.design"},
    {"metaqnn.cli", "metaqnn.__main__"},
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(p): p
        for pkg in PACKAGES
        for p in sorted((REPO / pkg).rglob("*.py"))
        if "__pycache__" not in p.parts
    }


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    return _imports_of(path.read_text(), _module_name(path), path.name == "__init__.py", modules)


def _imports_of(source: str, name: str, is_package: bool, modules: dict[str, Path]) -> set[str]:
    """The project modules that module ``name`` imports (``from a.b import c`` is ``a.b.c``
    when that is a module, else ``a.b``)."""
    tree = ast.parse(source)
    skip = _type_checking_lines(tree)
    out: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                package = name.split(".")[: -node.level + (1 if is_package else 0)]
                base = ".".join([*package, base] if base else package)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]  # fmt: skip
        else:
            continue
        out.update(t for t in targets if t.split(".")[0] in (*PACKAGES, "experiments", "bench"))
    out.discard(name)
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) for name, path in modules.items()}


def _room(module: str) -> int:
    for i, room in enumerate(ROOMS):
        if any(module == r or module.startswith(r + ".") for r in room):
            return i
    raise AssertionError(f"{module} is in no room of ROOMS: add it to the layering")


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every circle a depth-first walk of ``graph`` meets (each as a closed path)."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def test_no_import_circles(graph):
    cycles = find_cycles(graph)
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_imports_point_down_the_layers(graph):
    wrong = []
    for module, targets in graph.items():
        top = module.split(".")[0]
        for target in targets:
            if target.split(".")[0] not in ALLOWED[top]:
                wrong.append(f"{module} imports {target}")
            elif (
                top == "metaqnn"
                and target.startswith("metaqnn.")
                and module != "metaqnn"
                and _room(target) > _room(module)
            ):
                wrong.append(f"{module} (room {_room(module)}) imports {target} "
                             f"(room {_room(target)})")  # fmt: skip
    assert not wrong, "\n".join(sorted(wrong))


def test_envs_stays_free_of_torch():
    for path in (REPO / "envs").rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not {m for m in names if m.split(".")[0] in ("torch", "metaqnn", "gtn")}, path


def test_metaqnn_has_few_top_level_modules():
    top = sorted(p.name for p in (REPO / "metaqnn").glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


@pytest.mark.parametrize("package", [*PACKAGES, "experiments"])
def test_no_module_is_over_the_line_limit(package):
    long = {
        str(p.relative_to(REPO)): n
        for p in (REPO / package).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_checker_sees_a_lazy_circle_and_ignores_type_checking_imports():
    """The graph reader is not blind: a function-level import is an edge, an import under
    ``if TYPE_CHECKING:`` is not."""
    modules = {"metaqnn.a": Path("a.py"), "metaqnn.b": Path("b.py"), "metaqnn.c": Path("c.py")}
    sources = {
        "metaqnn.a": "def f():\n    from metaqnn.b import g\n",
        "metaqnn.b": "import metaqnn.a\n",
        "metaqnn.c": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import metaqnn.a\n",
    }
    graph = {name: _imports_of(src, name, False, modules) for name, src in sources.items()}
    assert graph == {"metaqnn.a": {"metaqnn.b"}, "metaqnn.b": {"metaqnn.a"}, "metaqnn.c": set()}
    assert find_cycles(graph) == [["metaqnn.a", "metaqnn.b", "metaqnn.a"]]
