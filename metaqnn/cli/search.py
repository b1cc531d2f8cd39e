"""``metaqnn search`` (a resumable MetaQNN search) and ``metaqnn report RUN_DIR``."""

from __future__ import annotations

import argparse
import math
import time
from datetime import datetime
from pathlib import Path

from metaqnn.errors import ConfigError
from metaqnn.rewards.spec import REWARDS, RewardSpec
from metaqnn.search.workers import BACKENDS


# ------------------------------------------------------------------ search
def configure_search(p: argparse.ArgumentParser) -> None:
    from metaqnn.cli.options import add_data_options, add_limit_options

    add_data_options(p, default_dataset="digits")
    add_limit_options(p)
    p.add_argument(
        "--reward",
        default="gtn",
        choices=sorted(REWARDS),
        help="gtn: accuracy after GTN training (needs --gtn-checkpoint); real: "
        "MetaQNN's real-data recipe for --epochs",
    )
    p.add_argument("--gtn-checkpoint", default=None, help="a `metaqnn gtn train` run folder")
    p.add_argument("--gtn-steps", type=int, default=None, help="GTN steps (default: all)")
    p.add_argument(
        "--gtn-seeds",
        type=int,
        default=1,
        help="GTN: initialisations per architecture, the reward is their mean (taught at "
        "once with vmap on a GPU)",
    )
    p.add_argument(
        "--precision", default="fp32", choices=["fp32", "bf16"], help="GTN: bf16 autocast"
    )
    p.add_argument("--channels-last", action="store_true", help="GTN: channels-last tensors")
    p.add_argument(
        "--score-size",
        type=int,
        default=1000,
        help="GTN: validation images scored per architecture (0: all)",
    )
    p.add_argument("--epochs", type=int, default=20, help="real: training epochs per model")
    p.add_argument("--space", default=None, help="search-space preset (default: the dataset's)")
    p.add_argument(
        "--width-divisor",
        type=int,
        default=1,
        help="divide conv filters and FC widths (use the GTN run's value)",
    )
    p.add_argument(
        "--max-design-flops",
        type=float,
        default=None,
        metavar="FLOPS",
        help="cost-aware search: allow a layer only while the architecture so far costs at "
        "most FLOPS forward FLOPs per image at widths / --flops-width-divisor (the classifier "
        "is always allowed; default: no cap). Not --max-flops, which limits what may be built",
    )
    p.add_argument(
        "--flops-width-divisor",
        type=int,
        default=1,
        help="count --max-design-flops at the space's widths divided by this (it must divide "
        "--width-divisor; default 1: full width)",
    )
    p.add_argument(
        "--schedule",
        default="paper",
        help="paper (2,700 models), quick (54), a factor of the paper's counts (0.1), or "
        "stages (1.0:30,0.5:10)",
    )
    p.add_argument("--replay", type=int, default=100,
                   help="stored trajectories replayed to the agent after each model")  # fmt: skip
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="evaluations at once (default: 1; on --resume: the run's)",
    )
    p.add_argument(
        "--backend",
        default=None,
        choices=sorted(BACKENDS),
        help="inline (default for 1 worker), process (default for more), ray",
    )
    p.add_argument("--address", default=None, help="Ray cluster address (implies ray)")
    p.add_argument("--logdir", default=None, help="run folder (default: runs/search/...)")
    p.add_argument("--resume", default=None, help="a run folder to continue")
    p.add_argument("--max-models", type=int, default=None,
                   help="stop after this many more models (resumable)")  # fmt: skip
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop after this many minutes (resumable)")  # fmt: skip
    p.add_argument("--top", type=int, default=10, help="models in the final report")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _config(args: argparse.Namespace):
    from metaqnn.cli.options import check_space_size, limits_of
    from metaqnn.core.spaces import space_for
    from metaqnn.search.loop import SearchConfig

    args.workers = 1 if args.workers is None else args.workers
    if args.reward == "gtn" and not args.gtn_checkpoint:
        raise ConfigError(
            "--reward gtn needs --gtn-checkpoint RUN_DIR (make one with `metaqnn "
            "gtn train`), or use --reward real"
        )
    if args.space is not None:
        space_for(args.space, args.dataset)
    backend = args.backend or (
        "ray" if args.address else "inline" if args.workers == 1 else "process"
    )
    spec = RewardSpec(
        name=args.reward,
        dataset=args.dataset,
        data_root=args.data_root,
        val_size=args.val_size,
        score_size=args.score_size or None,
        seed=args.seed,
        device=args.device,
        epochs=args.epochs,
        gtn_checkpoint=args.gtn_checkpoint,
        gtn_steps=args.gtn_steps,
        gtn_seeds=args.gtn_seeds,
        precision=args.precision,
        channels_last=args.channels_last,
    )
    config = SearchConfig(
        reward=spec,
        space=args.space,
        width_divisor=args.width_divisor,
        schedule=args.schedule,
        replay=args.replay,
        seed=args.seed,
        workers=args.workers,
        backend=backend,
        address=args.address,
        max_flops=args.max_design_flops,
        flops_width_divisor=args.flops_width_divisor,
    )
    check_space_size(config.search_space(), limits_of(args))
    return config


#: ``search`` options a resume cannot change: the run's own values (in its search.db) are used.
FIXED_ON_RESUME = (
    "dataset", "data_root", "download", "val_size", "device", "seed", "reward", "gtn_checkpoint",
    "gtn_steps", "gtn_seeds", "precision", "channels_last", "score_size", "epochs", "space",
    "width_divisor", "replay", "logdir", "max_design_flops", "flops_width_divisor",
)  # fmt: skip


def _refuse_fixed_on_resume(args: argparse.Namespace) -> None:
    """One line naming the options a resume would otherwise ignore; ``--schedule``,
    ``--workers``, ``--backend``, ``--max-models`` and ``--max-minutes`` are applied."""
    from metaqnn.cli.options import refuse_on_resume

    refuse_on_resume(args, FIXED_ON_RESUME, kept_in="its search.db",
                     changeable="--schedule (e.g. extend it), --workers, --backend, "
                     "--max-models and --max-minutes")  # fmt: skip


def run_search(args: argparse.Namespace) -> int:
    from metaqnn.cli.options import limits_of
    from metaqnn.core.limits import use_limits

    with use_limits(limits_of(args)):
        return _search(args)


def _search(args: argparse.Namespace) -> int:
    from metaqnn.cli.options import torch_device
    from metaqnn.search.loop import Search
    from metaqnn.search.report import write_report
    from metaqnn.search.tb import SearchLogger

    torch_device(args.device)
    if args.max_minutes is not None and not (math.isfinite(args.max_minutes)
                                             and args.max_minutes > 0):  # fmt: skip
        raise ConfigError(f"--max-minutes {args.max_minutes} must be a positive number")
    if args.resume:
        run_dir = Path(args.resume)
        _refuse_fixed_on_resume(args)
        search = Search.resume(run_dir, workers=args.workers)
        if "schedule" in getattr(args, "given_options", ()):
            before = search.schedule.total
            search.reschedule(args.schedule)
            print(f"schedule now {search.config.schedule} ({before} -> {search.schedule.total} "
                  "models; the Q-table and replay memory go on)")  # fmt: skip
        config = search.config
        search.logger = SearchLogger(run_dir, config.to_dict())
        print(
            f"resuming {run_dir}: {search.done} models recorded, "
            f"{len(search.in_flight)} in flight again"
        )
    else:
        config = _config(args)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path(
            args.logdir or f"runs/search/{args.dataset}__{args.reward}__seed{args.seed}__{stamp}"
        )
        search = Search.create(config, run_dir)
        search.logger = SearchLogger(run_dir, config.to_dict())
    space = search.space
    print(
        f"MetaQNN search on {config.reward.dataset} ({space.name} space, "
        f"{len(space.actions)} actions), reward {config.reward.name}, schedule "
        f"{search.schedule.total} models, {config.workers} worker(s) ({config.backend}); "
        f"run folder {run_dir}"
    )
    if config.max_flops is not None:
        print(f"cost cap: {config.max_flops:,.0f} FLOPs per image before the classifier, at "
              f"widths / {config.flops_width_divisor}")  # fmt: skip
    start, before = time.perf_counter(), search.done
    try:
        search.run(
            max_models=args.max_models,
            progress=not args.no_progress,
            time_limit_s=None if args.max_minutes is None else 60 * args.max_minutes,
        )
    finally:
        search.close()
    from metaqnn.search.store import SearchStore

    store = SearchStore.open(run_dir)
    paths = write_report(store, run_dir / "report", top=args.top)
    models = store.models()
    store.close()
    best = max(models, key=lambda m: m.reward, default=None)
    print(
        f"{len(models) - before} new models in {time.perf_counter() - start:.1f} s; "
        f"{len(models)} of {search.schedule.total} recorded"
        + (f"; best {best.reward:.4f} {best.architecture}" if best else "")
    )
    print(f"report: {paths['markdown']}, {paths['csv']}, {paths['figure']}")
    if len(models) < search.schedule.total:
        print(f"resume with: metaqnn search --resume {run_dir}")
    return 0


# ------------------------------------------------------------------ report
def configure_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a `metaqnn search` run folder")
    p.add_argument("--top", type=int, default=10, help="models in the table")
    p.add_argument("--out", default=None, help="output folder (default: RUN_DIR/report)")
    p.add_argument(
        "--retrain-top",
        type=int,
        default=0,
        help="retrain the top K on real data with the full recipe",
    )
    p.add_argument("--epochs", type=int, default=20, help="retraining epochs per model")
    p.add_argument("--device", default=None, help="retraining device (default: the search's)")
    p.add_argument("--data-root", default=None,
                   help="data root for retraining (default: $METAQNN_DATA)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_report(args: argparse.Namespace) -> int:
    from metaqnn.search.report import retrain_top, write_report
    from metaqnn.search.store import SearchStore

    if args.top < 1 or args.retrain_top < 0 or args.epochs < 1:
        raise ConfigError(
            f"--top={args.top}, --retrain-top={args.retrain_top} and --epochs="
            f"{args.epochs} must be positive (retrain-top may be 0)"
        )
    store = SearchStore.open(args.run_dir)
    try:
        if args.retrain_top:
            for r in retrain_top(
                store,
                args.retrain_top,
                epochs=args.epochs,
                device=args.device,
                data_root=args.data_root,
                progress=not args.no_progress,
            ):
                kept = f"; weights {r['checkpoint']}" if "checkpoint" in r else ""
                print(f"retrained {r['architecture']}: test accuracy {r['test_accuracy']}{kept}")
        paths = write_report(store, args.out or Path(args.run_dir) / "report", top=args.top)
        print(paths["markdown"].read_text())
        print(f"wrote {paths['markdown']}, {paths['csv']}, {paths['figure']}")
    finally:
        store.close()
    return 0
