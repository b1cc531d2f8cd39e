"""``metaqnn lopt train|eval``: meta-train a learned optimizer for robustness to input noise
(resumable), and compare it with learning-rate-tuned Adam."""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from metaqnn.cli.options import DefaultsHelpFormatter, floats, ints
from metaqnn.errors import CheckpointError, ConfigError
from metaqnn.learned_optimizer.checkpoints import (
    CHECKPOINT_NAME,
    ESConfig,
    es_config_from,
    load_lopt_checkpoint,
    lopt_config_from,
)
from metaqnn.learned_optimizer.checkpoints import CheckpointError as _GtnCheckpointError
from metaqnn.learned_optimizer.es import ESTrainer
from metaqnn.learned_optimizer.optimizer import BASES, THETA_INITS, LOptConfig
from metaqnn.runlock import RunLock


# ------------------------------------------------------------------ helpers
def load_state(path: str) -> dict[str, Any]:
    """A learned-optimizer checkpoint (file or run folder), or a one-line CheckpointError."""
    try:
        return load_lopt_checkpoint(path)
    except _GtnCheckpointError as exc:
        raise CheckpointError(str(exc)) from None


def _config(cls: type, **values: Any) -> Any:
    try:
        return cls(**values)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def trainer_for(
    state_or_extra: dict[str, Any],
    data: Any,
    es: ESConfig,
    lopt: LOptConfig,
    device: Any,
    *,
    logdir: Path | None,
    checkpoint: Path | None,
) -> ESTrainer:
    """An ES trainer on ``data`` for a run described by ``extra`` (noise, model widths)."""
    from metaqnn.learned_optimizer.task import InnerModelConfig, build_task

    extra = state_or_extra
    model = InnerModelConfig(tuple(extra["channels"]), tuple(extra["strides"]))
    task = build_task(data, model, float(extra["noise"]), device)
    return ESTrainer(task, es, lopt, logdir=logdir, checkpoint_path=checkpoint, extra=extra)


# ------------------------------------------------------------------ lopt train
def configure_train(p: argparse.ArgumentParser) -> None:
    """Options of ``metaqnn lopt train``."""
    from metaqnn.cli.options import add_data_options

    add_data_options(p, default_dataset="digits")
    p.add_argument("--noise", type=float, default=0.05, help="pixel noise of the meta-loss")
    p.add_argument("--channels", default="8,8,16,16", help="inner CNN channels (paper: x4)")
    p.add_argument("--strides", default="2,2,1,1", help="inner CNN strides")
    p.add_argument("--outer-steps", type=int, default=None,
                   help="ES steps (default: 300); with --resume, extends the run")  # fmt: skip
    p.add_argument("--pairs", type=int, default=4, help="antithetic pairs per step")
    p.add_argument("--sigma", type=float, default=0.01, help="perturbation std of theta")
    p.add_argument("--outer-lr", type=float, default=0.003, help="Adam lr on theta")
    p.add_argument("--truncation", type=int, default=20, help="inner steps per ES step")
    p.add_argument("--inner-steps", type=int, default=200, help="inner steps per model")
    p.add_argument("--batch-size", type=int, default=64, help="training images per inner step")
    p.add_argument("--val-batch", type=int, default=256,
                   help="noisy validation images scoring each unroll")  # fmt: skip
    p.add_argument("--step-mult", type=float, default=0.003,
                   help="scale of the direction output (paper 0.001)")  # fmt: skip
    p.add_argument("--theta-init", default="adam", choices=sorted(THETA_INITS),
                   help="random: the paper's start; adam: a normalised Adam step; zero_output: "
                   "outputs 0 (exactly Adam under --base adam)")  # fmt: skip
    p.add_argument("--base", default="none", choices=sorted(BASES),
                   help="none: the paper's step_mult * d * exp(exp_mult * m); adam: Adam's step "
                   "at --base-lr times exp(exp_mult * m) plus step_mult * d")  # fmt: skip
    p.add_argument("--base-lr", type=float, default=0.01, help="Adam's lr under --base adam")
    p.add_argument("--exp-mult", type=float, default=0.001,
                   help="scale of the log-step output (paper 0.001)")  # fmt: skip
    p.add_argument("--burn-in", type=int, default=0,
                   help="inner steps per run before any ES truncation (score the end)")  # fmt: skip
    p.add_argument("--raw-loss", action="store_true",
                   help="ES on the meta-loss itself instead of its log")  # fmt: skip
    p.add_argument("--no-vmap", action="store_true", help="unroll members one by one")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop (and save) after this many minutes")  # fmt: skip
    p.add_argument("--checkpoint-every", type=int, default=25, help="ES steps between checkpoints")
    p.add_argument("--logdir", default=None, help="run folder (default: runs/lopt/<dataset>__...)")
    p.add_argument("--resume", default=None, help="run folder or checkpoint to continue")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_train(args: argparse.Namespace) -> int:
    """Meta-train (or resume) a learned optimizer; prints where the checkpoint is."""
    from metaqnn.cli.options import load_data, torch_device

    device = torch_device(args.device)
    if args.resume:
        state = load_state(args.resume)
        extra = state["extra"]
        args.dataset, args.val_size, args.seed = extra["dataset"], extra["val_size"], extra["seed"]
        overrides = {} if args.outer_steps is None else {"outer_steps": args.outer_steps}
        es = _config(es_config_from, state=state, **overrides)
        lopt = lopt_config_from(state)
        run_dir = Path(args.resume)
        run_dir = run_dir if run_dir.is_dir() else run_dir.parent
    else:
        state = None
        data_name = args.dataset
        lopt = _config(LOptConfig, step_mult=args.step_mult, exp_mult=args.exp_mult,
                       base=args.base, base_lr=args.base_lr)  # fmt: skip
        es = _config(
            ESConfig,
            outer_steps=300 if args.outer_steps is None else args.outer_steps,
            pairs=args.pairs, sigma=args.sigma, outer_lr=args.outer_lr,
            truncation=args.truncation, inner_steps=args.inner_steps, burn_in=args.burn_in,
            batch_size=args.batch_size, val_batch=args.val_batch, theta_init=args.theta_init,
            log_loss=not args.raw_loss,
            vmap=not args.no_vmap, seed=args.seed, checkpoint_every=args.checkpoint_every,
        )  # fmt: skip
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path(args.logdir or f"runs/lopt/{data_name}__noise{args.noise:g}__{stamp}")
        if (run_dir / CHECKPOINT_NAME).exists():
            raise ConfigError(f"{run_dir} already holds a learned optimizer: resume it with "
                              f"--resume {run_dir}, or choose another --logdir")  # fmt: skip
        extra = {
            "dataset": data_name,
            "val_size": args.val_size,
            "seed": args.seed,
            "noise": args.noise,
            "channels": list(ints(args.channels, "--channels")),
            "strides": list(ints(args.strides, "--strides")),
        }
    data = load_data(args)
    extra["val_size"] = len(data.val)
    trainer = trainer_for(
        extra, data, es, lopt, device, logdir=run_dir / "tb", checkpoint=run_dir / CHECKPOINT_NAME
    )
    lock = RunLock(run_dir).acquire()  # one owner: a second writer is refused
    if state is not None:
        trainer.load_state(state)
    else:
        trainer.log_hyperparameters(extra)
    start = time.perf_counter()
    limit = None if args.max_minutes is None else 60 * args.max_minutes
    with lock:
        history = trainer.run(progress=not args.no_progress, time_limit_s=limit)
    wall = time.perf_counter() - start
    last = history[-10:]
    mean_last = sum(r.meta_loss for r in last) / max(1, len(last))
    print(f"learned optimizer on {data.name}: {trainer.step}/{es.outer_steps} ES steps "
          f"({len(history)} in all), {wall:.0f} s this session")  # fmt: skip
    print(f"noisy-validation loss (sigma {extra['noise']:g}) of the last {len(last)} "
          f"truncations: {mean_last:.4f}")  # fmt: skip
    print(f"checkpoint     {run_dir / CHECKPOINT_NAME}")
    return 0


# ------------------------------------------------------------------ lopt eval
def configure_eval(p: argparse.ArgumentParser) -> None:
    """Options of ``metaqnn lopt eval``."""
    p.add_argument("checkpoint", help="learned-optimizer run folder or checkpoint")
    p.add_argument("--data-root", default=None, help="data root (default: $METAQNN_DATA)")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, ...")
    p.add_argument("--steps", type=int, default=None, help="inner steps (default: the run's)")
    p.add_argument("--adam-lrs", default="0.001,0.003,0.01,0.03,0.1", help="Adam's lr grid")
    p.add_argument("--seeds", type=int, default=5, help="models per optimizer")
    p.add_argument("--tune-seeds", type=int, default=3, help="models per Adam lr when tuning")
    p.add_argument("--test-noise", default="0,0.05,0.1,0.2,0.3", help="test noise levels")
    p.add_argument("--corruptions", default=None, help="held-out corruptions (default: all "
                   "but gaussian_noise)")  # fmt: skip
    p.add_argument("--initial", action="store_true",
                   help="evaluate the weights the run started from (before ES)")  # fmt: skip
    p.add_argument("--out", default=None, help="report folder (default: runs/lopt/eval__...)")


def run_eval(args: argparse.Namespace) -> int:
    """Learned optimizer vs tuned Adam (clean and noisy training): report.md and report.json."""
    from metaqnn.cli.options import torch_device
    from metaqnn.core.data import load_dataset
    from metaqnn.learned_optimizer.comparison import ComparisonConfig
    from metaqnn.learned_optimizer.evaluation import evaluate_run

    state = load_state(args.checkpoint)
    extra = state["extra"]
    device = torch_device(args.device)
    data = load_dataset(extra["dataset"], root=args.data_root, val_size=extra["val_size"],
                        seed=extra["seed"], device=device)  # fmt: skip
    es = es_config_from(state)
    values: dict[str, Any] = dict(
        steps=args.steps or es.inner_steps, batch_size=es.batch_size, noise=extra["noise"],
        adam_lrs=floats(args.adam_lrs, "--adam-lrs"),
        tune_seeds=tuple(range(100, 100 + args.tune_seeds)), eval_seeds=tuple(range(args.seeds)),
        test_noise=floats(args.test_noise, "--test-noise"), curve_every=es.truncation,
    )  # fmt: skip
    if args.corruptions is not None:
        values["corruptions"] = tuple(c.strip() for c in args.corruptions.split(",") if c.strip())
    config = _config(ComparisonConfig, **values)
    start = time.perf_counter()
    result = evaluate_run(state, data, config, device, initial=args.initial)
    wall = time.perf_counter() - start
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or f"runs/lopt/eval__{extra['dataset']}__{stamp}")
    out.mkdir(parents=True, exist_ok=True)
    markdown = result.markdown() + f"\n\nWall time {wall:.0f} s.\n"
    (out / "report.md").write_text(markdown)
    (out / "report.json").write_text(json.dumps(result.to_dict(), indent=2, default=float))
    print(markdown)
    print(f"report         {out / 'report.md'}")
    return 0


#: ``metaqnn lopt`` subcommands: name -> (configure parser, help).
SUBCOMMANDS = {
    "train": (configure_train, "meta-train a learned optimizer by ES (resumable)"),
    "eval": (configure_eval, "the learned optimizer vs learning-rate-tuned Adam"),
}
#: ``metaqnn lopt`` subcommands: name -> what runs.
RUNS = {"train": run_train, "eval": run_eval}


def configure_lopt(p: argparse.ArgumentParser) -> None:
    """``metaqnn lopt``: one parser per subcommand."""
    sub = p.add_subparsers(dest="lopt_command", required=True, metavar="WHAT", help="one of:")
    for name, (configure, help_text) in SUBCOMMANDS.items():
        configure(sub.add_parser(name, help=help_text, description=help_text,
                                 formatter_class=DefaultsHelpFormatter))  # fmt: skip


def run_lopt(args: argparse.Namespace) -> int:
    """Run the chosen ``metaqnn lopt`` subcommand."""
    return RUNS[args.lopt_command](args)
