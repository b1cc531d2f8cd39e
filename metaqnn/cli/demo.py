"""``metaqnn demo``: the options of :class:`metaqnn.demo.DemoConfig`, then
:func:`metaqnn.demo.run_demo`."""

from __future__ import annotations

import argparse


def configure_demo(p: argparse.ArgumentParser) -> None:
    """The demo's options (defaults from :class:`~metaqnn.demo.DemoConfig`)."""
    p.add_argument("--dataset", default="digits", help="dataset name (see `datasets`)")
    p.add_argument("--data-root", default=None, help="data root (default: $METAQNN_DATA)")
    p.add_argument("--logdir", default="runs/demo", help="where the runs go")
    p.add_argument("--gtn-outer-steps", type=int, default=150, help="GTN meta-training steps")
    p.add_argument("--schedule", default="quick", help="the search's epsilon schedule")
    p.add_argument("--retrain-top", type=int, default=3, help="top models retrained on real data")
    p.add_argument("--epochs", type=int, default=10, help="retraining epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="delete the previous demo runs first")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo."""
    from metaqnn.demo import DemoConfig
    from metaqnn.demo import run_demo as demo

    demo(DemoConfig(
        dataset=args.dataset, data_root=args.data_root, logdir=args.logdir,
        gtn_outer_steps=args.gtn_outer_steps, schedule=args.schedule,
        retrain_top=args.retrain_top, epochs=args.epochs, seed=args.seed, fresh=args.fresh,
        progress=not args.no_progress,
    ))  # fmt: skip
    return 0
