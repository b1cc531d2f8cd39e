"""``metaqnn train`` (one architecture on real data, a checkpoint) and ``metaqnn evaluate``."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

from metaqnn.cli.options import (
    EXIT_FAILED_RUN,
    DefaultsHelpFormatter,
    add_data_options,
    add_limit_options,
    add_net_options,
    check_size,
    limits_of,
    load_data,
    net_config_of,
    parse_architecture,
    torch_device,
)
from metaqnn.core.spaces import space_for, space_of
from metaqnn.errors import ConfigError


def configure_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("architecture", help='e.g. "[C(32,3,1), P(2,2), FC(128), SM(10)]"')
    add_data_options(p, default_dataset="mnist")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, default=None, help="training epochs (default: 20)")
    budget.add_argument("--steps", type=int, default=None, help="optimizer steps instead of epochs")
    p.add_argument("--batch-size", type=int, default=128, help="training mini-batch size")
    p.add_argument("--precision", default="fp32", help="fp32, or bf16 autocast of the training "
                   "passes (faster on GPUs and on CPUs with AMX / AVX-512 BF16)")  # fmt: skip
    p.add_argument("--lr", type=float, default=1e-3,
                   help="initial Adam learning rate (x0.2 every 5 epochs)")  # fmt: skip
    p.add_argument("--space", default=None, help="also check the rules of this preset")
    add_net_options(p)
    add_limit_options(p)
    p.add_argument("--out", default=None, help="checkpoint path (default: runs/train/...pt)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_train(args: argparse.Namespace) -> int:
    from metaqnn.core.limits import use_limits

    with use_limits(limits_of(args)):
        return _train(args)


def _train(args: argparse.Namespace) -> int:
    from metaqnn.core.checkpoint import save_checkpoint
    from metaqnn.core.data import split_record
    from metaqnn.core.divergence import divergence
    from metaqnn.core.limits import active_limits
    from metaqnn.core.outputs import check_output_path
    from metaqnn.core.training import TrainConfig, evaluate, train_architecture
    from metaqnn.runinfo import run_metadata

    arch = parse_architecture(args.architecture)
    if args.space is not None:
        space_of(args.space).validate(arch)
        space_for(args.space, args.dataset)  # its rules are for the dataset's images
    check_size(arch, args.dataset, active_limits())
    config = TrainConfig(
        epochs=args.epochs if args.epochs is not None else TrainConfig.epochs,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        precision=args.precision,
        seed=args.seed,
    )
    net_config = net_config_of(args)
    device = torch_device(args.device)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or f"runs/train/{args.dataset}__seed{args.seed}__{stamp}.pt")
    check_output_path(out, force=args.force)  # a bad --out fails now, not after training
    start = time.perf_counter()
    data = load_data(args)
    if arch.num_classes != data.spec.num_classes:
        raise ConfigError(
            f"{arch} ends in SM({arch.num_classes}) but {data.name} has "
            f"{data.spec.num_classes} classes"
        )
    result = train_architecture(
        arch, data.train, data.val, config, net_config=net_config, device=device,
        progress=not args.no_progress,
    )  # fmt: skip
    test = evaluate(result.model, data.test, batch_size=config.eval_batch_size)
    why = result.reason or divergence(test.loss, arch.num_classes, split="test")
    if why:  # nonsense is not saved as a model (see metaqnn.core.divergence)
        print(f"metaqnn: training diverged: {why}; no checkpoint written", file=sys.stderr)
        return EXIT_FAILED_RUN
    wall = time.perf_counter() - start
    metrics = {
        "val_accuracy": result.val_accuracy,
        "val_loss": result.val_loss,
        "test_accuracy": test.accuracy,
        "test_loss": test.loss,
        "train_wall_time_s": result.wall_time_s,
        "steps": result.total_steps,
        "restarts": result.restarts,
        "history": [dict(h) for h in result.history],
        "run": run_metadata(device),
        "normalization": {"mean": list(data.mean), "std": list(data.std)},
    }
    save_checkpoint(
        out, architecture=arch, net_config=net_config, train_config=config, dataset=data.name,
        input_shape=data.spec.input_shape, state_dict=result.state_dict(), metrics=metrics,
        split=split_record(data, args.seed),
    )  # fmt: skip
    print(f"architecture   {arch}")
    print(f"dataset        {data.source}: {len(data.train)} train, {len(data.val)} val, "
          f"{len(data.test)} test")  # fmt: skip
    print(f"training       {result.epochs_run} epochs, {result.total_steps} steps, "
          f"{result.restarts} restarts on {metrics['run']['device_name']}")  # fmt: skip
    print(f"validation     accuracy {result.val_accuracy:.4f}  loss {result.val_loss:.4f}")
    print(f"test           accuracy {test.accuracy:.4f}  loss {test.loss:.4f}")
    print(f"wall time      {wall:.1f} s (training {result.wall_time_s:.1f} s)")
    print(f"checkpoint     {out}")
    return 0


def configure_evaluate(p: argparse.ArgumentParser) -> None:
    from metaqnn.cli.evaluate import SUBCOMMANDS

    sub = p.add_subparsers(dest="what", required=True, metavar="WHAT", help="one of:")
    acc = sub.add_parser("accuracy", help="accuracy of a checkpoint on its dataset",
                         formatter_class=DefaultsHelpFormatter)  # fmt: skip
    acc.add_argument("checkpoint", help="a checkpoint written by `metaqnn train`")
    add_data_options(acc, default_dataset=None, checkpoint_split=True,
                     seed_help="seed of the split, if the checkpoint records none")  # fmt: skip
    acc.add_argument("--split", choices=["test", "val"], default="test", help="split to evaluate")
    for name, (configure, _, help_text) in SUBCOMMANDS.items():
        configure(sub.add_parser(name, help=help_text, description=help_text,
                                 formatter_class=DefaultsHelpFormatter))  # fmt: skip


def run_evaluate(args: argparse.Namespace) -> int:
    from metaqnn.cli.evaluate import SUBCOMMANDS, checkpoint_data
    from metaqnn.core.checkpoint import load_checkpoint
    from metaqnn.core.training import evaluate

    if args.what in SUBCOMMANDS:
        return SUBCOMMANDS[args.what][1](args)
    ckpt = load_checkpoint(args.checkpoint)
    device = torch_device(args.device)
    data = checkpoint_data(args, ckpt, split=args.split)  # the split it was trained with
    if tuple(data.spec.input_shape) != tuple(ckpt.input_shape):
        raise ConfigError(
            f"{args.checkpoint} expects inputs {ckpt.input_shape}, {data.name} has "
            f"{data.spec.input_shape}"
        )
    model = ckpt.build_model(device)
    split = getattr(data, args.split)
    result = evaluate(model, split)
    print(f"{ckpt.architecture} on {data.source} {args.split} split ({len(split)} images): "
          f"accuracy {result.accuracy:.4f}, loss {result.loss:.4f}")  # fmt: skip
    return 0
