"""``metaqnn demo``: the options of :class:`metaqnn.demo.DemoConfig`, then
:func:`metaqnn.demo.run_demo`."""

from __future__ import annotations

import argparse


def configure_demo(p: argparse.ArgumentParser) -> None:
    """The demo's options (defaults from :class:`~metaqnn.demo.DemoConfig`)."""
    p.add_argument("--dataset", default="digits", help="dataset name (see `datasets`)")
    p.add_argument("--budget", default="5m", help="wall-clock budget: 5m, 1h, 90m, 600 (seconds)")
    p.add_argument("--data-root", default=None, help="data root (default: $METAQNN_DATA)")
    p.add_argument("--logdir", default="runs/demo", help="run folder")
    p.add_argument("--seed", type=int, default=0, help="seed of everything")
    p.add_argument("--fresh", action="store_true", help="delete the previous demo run first")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo."""
    from metaqnn.demo import DemoConfig
    from metaqnn.demo import run_demo as demo

    demo(DemoConfig(dataset=args.dataset, budget=args.budget, data_root=args.data_root,
                    logdir=args.logdir, seed=args.seed, fresh=args.fresh,
                    progress=not args.no_progress))  # fmt: skip
    return 0
