"""``python -m experiments list`` and ``python -m experiments NAME [--quick] [--set k=v] ...``."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from experiments.harness import experiment_names, main


def run_named(name: str, argv: Sequence[str]) -> int:
    """Run the experiment ``name`` (a module of this package with a config) with ``argv``."""
    names = experiment_names()
    if name not in names:
        print(
            f"experiments: unknown experiment {name!r}; known: {', '.join(names)}", file=sys.stderr
        )
        return 2
    module = importlib.import_module(f"experiments.{name}")
    return main(name, module.Config, module.run, list(argv), module.__doc__)


def cli(argv: Sequence[str] | None = None) -> int:
    """The runner's command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "list"):
        print("usage: python -m experiments NAME [--quick] [--set KEY=VALUE] [--device D] ...")
        print("experiments:")
        for name in experiment_names():
            module = importlib.import_module(f"experiments.{name}")
            print(f"  {name:<18} {(module.__doc__ or '').strip().splitlines()[0]}")
        return 0
    return run_named(argv[0], argv[1:])


if __name__ == "__main__":
    sys.exit(cli())
