"""``metaqnn bench ...``: build a tabular benchmark of a search space (resumable), export it
as one verified file, show a table file."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable

from metaqnn.cli.options import DefaultsHelpFormatter
from metaqnn.errors import ConfigError


# ------------------------------------------------------------------ bench build
def configure_build(p: argparse.ArgumentParser) -> None:
    """Options of ``metaqnn bench build``."""
    p.add_argument("--space", default="mnist-bench", help="search-space preset to enumerate")
    p.add_argument("--dataset", default="mnist", help="dataset name (see `datasets`)")
    p.add_argument("--data-root", default=None, help="data root (default: $METAQNN_DATA)")
    p.add_argument("--out", default=None,
                   help="build folder (default: runs/bench/SPACE); rerunning the same command "
                   "continues its build")  # fmt: skip
    p.add_argument("--recipe", default="short", help="training recipe (short, smoke)")
    p.add_argument("--seeds", type=int, default=2, help="training seeds 0..N-1 per architecture")
    p.add_argument("--workers", type=int, default=1,
                   help="processes training at once, one torch thread each")  # fmt: skip
    p.add_argument("--gtn-teacher", default="mnist",
                   help='GTN teacher for the gtn_reward column: a shipped name, a checkpoint, '
                   'or "none"')  # fmt: skip
    p.add_argument("--max-units", type=int, default=None,
                   help="stop after this many runs and GTN scores (a build in chunks)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (none either when stderr is not a terminal)")  # fmt: skip


def run_build(args: argparse.Namespace) -> int:
    """Run ``metaqnn bench build``: build or continue, then print where it stands."""
    from envs.space import get_space
    from metaqnn.tabular.build import build_table, default_run_dir
    from metaqnn.tabular.measure import BuildJob
    from metaqnn.tabular.recipe import get_recipe

    if args.max_units is not None and args.max_units < 1:
        raise ConfigError(f"--max-units {args.max_units}: must be an integer of at least 1")
    try:
        space = get_space(args.space)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    teacher = None if args.gtn_teacher.lower() == "none" else args.gtn_teacher
    job = BuildJob(args.dataset, get_recipe(args.recipe), teacher, args.data_root)
    out = args.out or str(default_run_dir(space))
    summary = build_table(
        out, space, job, tuple(range(args.seeds)), workers=args.workers,
        max_units=args.max_units, progress=not args.no_progress,
        command=shlex.join(["metaqnn", *sys.argv[1:]]),
    )  # fmt: skip
    state = "complete" if summary.complete else "unfinished (rerun the same command to continue)"
    print(f"table     {summary.run_dir}: {summary.runs_done} of {summary.runs_total} runs, "
          f"{summary.architectures} architectures; {state}")  # fmt: skip
    gtn = summary.gtn_note or f"{summary.gtn_done} of {summary.architectures} architectures"
    print(f"gtn       {gtn}")
    rate = summary.seconds / summary.measured if summary.measured else 0.0
    print(f"this call {summary.measured} units in {summary.seconds:.0f} s ({rate:.2f} s each)")
    return 0


# ----------------------------------------------------------------- bench export
def configure_export(p: argparse.ArgumentParser) -> None:
    """Options of ``metaqnn bench export``."""
    p.add_argument("run_dir", help="a folder of `metaqnn bench build`")
    p.add_argument("--out", required=True, help="the .npz file to write")
    p.add_argument("--partial", action="store_true",
                   help="export an unfinished table (missing runs are NaN)")  # fmt: skip
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")


def run_export(args: argparse.Namespace) -> int:
    """Run ``metaqnn bench export``."""
    from metaqnn.tabular.export import export_table

    summary = export_table(args.run_dir, args.out, partial=args.partial, force=args.force)
    state = "complete" if summary.complete else "PARTIAL"
    print(f"exported  {summary.path} ({summary.bytes / 1e6:.2f} MB, {state}: "
          f"{summary.runs_done} of {summary.runs_total} runs, {summary.architectures} "
          "architectures)")  # fmt: skip
    print(f'load      gymnasium.make("metaqnn/CNNDesignBench-v0", table="{summary.path}")')
    return 0


# ------------------------------------------------------------------- bench show
def configure_show(p: argparse.ArgumentParser) -> None:
    """Options of ``metaqnn bench show``."""
    p.add_argument("table", help="a shipped table's name (mnist-bench) or a file written by "
                   "`metaqnn bench export`")  # fmt: skip
    p.add_argument("--top", type=int, default=5, help="best architectures by mean validation")


def run_show(args: argparse.Namespace) -> int:
    """Run ``metaqnn bench show``: verify a table file and print what it holds."""
    import numpy as np

    from envs.bench import BenchTableError, load_table

    try:
        table = load_table(args.table)
    except BenchTableError as exc:
        raise ConfigError(str(exc)) from None
    h, val = table.header, table.arrays["val_accuracy"]
    counts = h["counts"]
    print(f"table     {table.path}: space {h['space']['name']!r}, dataset {h['dataset']}, "
          f"recipe {h['recipe']['name']!r}, seeds {h['seeds']}")  # fmt: skip
    print(f"runs      {counts['runs_done']} of {counts['runs_total']}"
          f"{'' if table.complete else ' (partial)'}; built by: {h['command']}")  # fmt: skip
    mean = val.mean(axis=1)  # NaN where a seed is missing: those sort last
    order = np.argsort(np.where(np.isfinite(mean), -mean, np.inf))[: args.top]
    for i in order:
        print(f"  val {mean[i]:.4f}  {table.architectures[i]}")
    return 0


#: ``metaqnn bench`` subcommand -> (configure, run, help).
SUBCOMMANDS: dict[str, tuple[Callable, Callable, str]] = {
    "build": (configure_build, run_build,
              "train every architecture of a space x seeds into a resumable folder"),
    "export": (configure_export, run_export,
               "write a build folder's table as one verified .npz file"),
    "show": (configure_show, run_show, "verify a table file and print its best architectures"),
}  # fmt: skip


def configure_bench(p: argparse.ArgumentParser) -> None:
    """``metaqnn bench``: one parser per subcommand."""
    sub = p.add_subparsers(dest="bench_command", required=True, metavar="WHAT", help="one of:")
    for name, (configure, _, help_text) in SUBCOMMANDS.items():
        configure(sub.add_parser(name, help=help_text, description=help_text,
                                 formatter_class=DefaultsHelpFormatter))  # fmt: skip


def run_bench(args: argparse.Namespace) -> int:
    """Run the chosen ``metaqnn bench`` subcommand."""
    return SUBCOMMANDS[args.bench_command][1](args)
