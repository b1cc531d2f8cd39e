"""``metaqnn design``: the main job within a wall-clock budget (:mod:`metaqnn.design`)."""

from __future__ import annotations

import argparse

from metaqnn.cli.options import torch_device
from metaqnn.design import picks


def configure_design(p: argparse.ArgumentParser) -> None:
    """The options of :class:`metaqnn.design.pipeline.DesignConfig`."""
    p.add_argument("--dataset", default="digits", help="dataset with a design preset: "
                   "digits, mnist, fashion-mnist, cifar10")  # fmt: skip
    p.add_argument("--budget", default=None, help="wall-clock budget: 2h, 90m, 1h30m, 600 "
                   "(required for a new run; with --resume, a new total)")  # fmt: skip
    p.add_argument("--logdir", default=None, help="run folder (default: runs/design/<dataset>)")
    p.add_argument("--resume", default=None, metavar="RUN", help="continue a design run")
    p.add_argument("--gtn-checkpoint", default=None,
                   help="reuse this teacher (a GTN run folder), do not train one")  # fmt: skip
    p.add_argument("--recipe", default="strong", help="final recipe: strong, or metaqnn "
                   "(MetaQNN's 20-epoch recipe)")  # fmt: skip
    p.add_argument("--epochs", type=int, default=None,
                   help="most epochs of the final recipe (default: the recipe's)")  # fmt: skip
    p.add_argument("--precision", default="fp32", help="final training: fp32, or bf16 "
                   "autocast (faster on GPUs and on CPUs with AMX / AVX-512 BF16)")  # fmt: skip
    p.add_argument("--finalists", type=int, default=None,
                   help="designs trained at full width (default: the dataset's, 5 for "
                   "digits, else 3)")  # fmt: skip
    p.add_argument("--finalist-pick", default=None, metavar="PICK",
                   help="how the finalists are picked from the search's ranking: "
                   f"{picks.help_text()}; default: the dataset's, heads for digits, else "
                   "reward")  # fmt: skip
    p.add_argument("--folds", type=int, default=None,
                   help="pick the winner by k-fold cross-validation over training and "
                   "validation images, then refit each model on all of them (0: by the "
                   "validation split; default: the dataset's: 5 for digits, else 0)")  # fmt: skip
    p.add_argument("--width-divisor", type=int, default=None,
                   help="search width: divide filters and FC widths by this (default: the "
                   "dataset's: 16 for MNIST, 2 for digits)")  # fmt: skip
    p.add_argument("--space", default=None, metavar="PRESET",
                   help="search-space preset (default: the dataset's, with MetaQNN's rules; "
                   "mnist-fc14 and fashion-mnist-fc14 allow FC layers on maps of up to "
                   "14x14, as the hand baselines have them)")  # fmt: skip
    p.add_argument("--score-size", type=int, default=1000,
                   help="validation images per GTN reward (0: all)")  # fmt: skip
    p.add_argument("--shares", default=None, metavar="T,S,F",
                   help="budget shares of teacher, search and final training (default: "
                   "0.25,0.35,0.4, 0.2,0.25,0.55 on digits; 0,0.45,0.55 with "
                   "--gtn-checkpoint)")  # fmt: skip
    p.add_argument("--agent", default="qlearning", help="search agent: qlearning (MetaQNN's "
                   "schedule sized to the search share) or random (random search)")  # fmt: skip
    p.add_argument("--reward", default="gtn", help="search reward: gtn or real "
                   "(--real-epochs of real-data training at the search width; no "
                   "teacher)")  # fmt: skip
    p.add_argument("--real-epochs", type=int, default=1,
                   help="epochs of the real reward")  # fmt: skip
    p.add_argument("--final-width-divisor", type=int, default=None,
                   help="train the finalists at widths / this (default: full width, or the "
                   "widest that fits the time left)")  # fmt: skip
    p.add_argument("--cost-multiple", type=float, default=None, metavar="X",
                   help="cost-aware search: designs may cost at most X times the forward FLOPs "
                   "of the costliest hand baseline, counted at widths / --cost-width-divisor "
                   "(default: the dataset's: 2 on MNIST and Fashion-MNIST, off on digits; 0: "
                   "off)")  # fmt: skip
    p.add_argument("--cost-width-divisor", type=int, default=None,
                   help="count the cost cap at widths / this (default: the dataset's: 4 on "
                   "MNIST; narrowed to one that divides --width-divisor)")  # fmt: skip
    p.add_argument("--no-baselines", action="store_true",
                   help="do not train the hand-designed baselines in the final phase")  # fmt: skip
    p.add_argument("--data-root", default=None, help="data root (default: $METAQNN_DATA)")
    p.add_argument("--download", action="store_true", help="let torchvision download files")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, ...")
    p.add_argument("--seed", type=int, default=0, help="seed of everything")
    p.add_argument("--fresh", action="store_true", help="delete a previous run in --logdir")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_design(args: argparse.Namespace) -> int:
    """Run or resume a design."""
    from pathlib import Path

    from metaqnn.cli.options import floats
    from metaqnn.design.budget import parse_duration
    from metaqnn.design.pipeline import DesignConfig, reset_run
    from metaqnn.design.run import run_design as design
    from metaqnn.errors import ConfigError

    torch_device(args.device)
    budget = None if args.budget is None else parse_duration(args.budget)
    if args.resume:
        design(resume=args.resume, budget_s=budget, progress=not args.no_progress)
        return 0
    if budget is None:
        raise ConfigError("--budget is required for a new design run (e.g. --budget 2h)")
    logdir = args.logdir or f"runs/design/{args.dataset}"
    if args.fresh:
        reset_run(Path(logdir))
    shares = None if args.shares is None else floats(args.shares, "--shares")
    config = DesignConfig(
        dataset=args.dataset, budget_s=budget, logdir=logdir, data_root=args.data_root,
        download=args.download, device=args.device, seed=args.seed,
        gtn_checkpoint=args.gtn_checkpoint, recipe=args.recipe, epochs=args.epochs,
        finalists=args.finalists, finalist_pick=args.finalist_pick, folds=args.folds,
        width_divisor=args.width_divisor,
        score_size=args.score_size or None, shares=shares, agent=args.agent,
        reward=args.reward, real_epochs=args.real_epochs, baselines=not args.no_baselines,
        final_width_divisor=args.final_width_divisor, cost_multiple=args.cost_multiple,
        cost_width_divisor=args.cost_width_divisor, precision=args.precision,
        space=args.space,
    )  # fmt: skip
    design(config, progress=not args.no_progress)
    return 0
