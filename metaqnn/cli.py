"""The ``metaqnn`` command line. Each subcommand is an entry of :data:`COMMANDS`.

Every error a user can cause (a malformed architecture, a broken rule, an unknown or missing
dataset, a corrupt checkpoint, a bad option value) ends the program with one line on stderr
and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

import metaqnn
from envs.graph import count_architectures, state_graph, summarize_state_graph
from envs.layers import Architecture, ArchitectureError
from envs.space import RULES, SearchSpace, get_space
from metaqnn.errors import ConfigError, MetaQNNError
from metaqnn.markdown import markdown_table

EXIT_USER_ERROR = 2
EXIT_FAILED_RUN = 1


@dataclass(frozen=True)
class Command:
    """A subcommand: how to configure its parser and what it runs."""

    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# ------------------------------------------------------------------ shared options
def _space(name: str, **overrides: object) -> SearchSpace:
    try:
        return get_space(name, **overrides)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _parse(text: str) -> Architecture:
    return Architecture.parse(text)


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"bad --device {name!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name!r}: CUDA is not available on this machine")
    return device


def _add_data_options(p: argparse.ArgumentParser, default_dataset: str | None = "digits") -> None:
    if default_dataset is not None:
        p.add_argument("--dataset", default=default_dataset, help="dataset name (see `datasets`)")
    p.add_argument("--data-root", default=None, help="data root (default: $METAQNN_DATA)")
    p.add_argument("--download", action="store_true", help="let torchvision download files")
    p.add_argument("--val-size", type=int, default=None, help="validation images held out")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, ...")
    p.add_argument("--seed", type=int, default=0, help="seed of split, init and shuffling")


def _add_net_options(p: argparse.ArgumentParser) -> None:
    from metaqnn.nets import ACTIVATIONS, INITS, NORMS

    p.add_argument("--norm", default="batch", help=f"normalisation: {', '.join(sorted(NORMS))}")
    p.add_argument("--activation", default="relu", help=", ".join(sorted(ACTIVATIONS)))
    p.add_argument("--init", default="xavier", help=", ".join(sorted(INITS)))
    p.add_argument("--no-dropout", action="store_true", help="disable MetaQNN's dropout")


def _net_config(args: argparse.Namespace):
    from metaqnn.nets import NetConfig

    return NetConfig(
        norm=args.norm, activation=args.activation, dropout=not args.no_dropout, init=args.init
    )


def _load(args: argparse.Namespace, name: str | None = None):
    from metaqnn.data import load_dataset

    return load_dataset(
        name or args.dataset,
        root=args.data_root,
        val_size=args.val_size,
        device=_device(args.device),
        seed=args.seed,
        download=args.download,
    )


# ------------------------------------------------------------------ space / validate / sample
def _configure_space(p: argparse.ArgumentParser) -> None:
    p.add_argument("--space", default="mnist", help="search-space preset")


def _run_space(args: argparse.Namespace) -> int:
    space = _space(args.space)
    graph = state_graph(space)
    summary = summarize_state_graph(graph)
    print(f"search space {space.name!r}")
    for name, value in vars(space).items():
        print(f"  {name:15s} {value}")
    print(f"actions           {len(space.actions)} ({', '.join(map(str, space.actions))})")
    print(f"reachable states  {summary.states} ({summary.terminal_states} terminal)")
    print(f"legal (state, action) pairs  {summary.actions}")
    print(f"architectures     {count_architectures(graph, space.start()):,}")
    print("rules:")
    for name, rule in RULES.items():
        print(f"  {name:30s} {rule.description}")
    return 0


def _configure_validate(p: argparse.ArgumentParser) -> None:
    p.add_argument("architecture", help='e.g. "[C(64,3,1), P(2,2), FC(512), SM(10)]"')
    p.add_argument("--space", default="mnist", help="search-space preset whose rules to check")


def _run_validate(args: argparse.Namespace) -> int:
    from metaqnn.nets import count_flops, trace_shapes

    space = _space(args.space)
    arch = space.validate(args.architecture)
    shapes = trace_shapes(arch, in_channels=space.input_channels, input_size=space.input_size)
    print(f"{arch} obeys every rule of search space {space.name!r}")
    rows = [
        [
            str(i),
            str(layer),
            f"{s.out_channels}" + ("" if s.flat else f"x{s.out_size}x{s.out_size}"),
        ]
        for i, (layer, s) in enumerate(zip(arch, shapes, strict=True))
    ]
    print(markdown_table(["#", "layer", "output shape"], rows))
    flops = count_flops(arch, in_channels=space.input_channels, input_size=space.input_size)
    print(f"FLOPs per image: {flops:,}")
    return 0


def _configure_sample(p: argparse.ArgumentParser) -> None:
    p.add_argument("--space", default="mnist", help="search-space preset")
    p.add_argument("-n", "--count", type=int, default=5, help="architectures to sample")
    p.add_argument("--seed", type=int, default=0)


def _run_sample(args: argparse.Namespace) -> int:
    space = _space(args.space)
    rng = np.random.default_rng(args.seed)
    for _ in range(args.count):
        print(space.sample(rng))
    return 0


# ------------------------------------------------------------------ datasets
def _configure_datasets(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", default=None, help="data root (default: $METAQNN_DATA)")


def _run_datasets(args: argparse.Namespace) -> int:
    from metaqnn.data import describe

    info = describe(args.data_root)
    print(f"data root: {info[0]['root']}")
    rows = [
        [d["name"], "x".join(map(str, d["input_shape"])), str(d["num_classes"]),
         "yes" if d["available"] else "no", d["description"]]
        for d in info
    ]  # fmt: skip
    print(markdown_table(["dataset", "shape", "classes", "available", "description"], rows))
    return 0


# ------------------------------------------------------------------ train / evaluate
def _configure_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("architecture", help='e.g. "[C(32,3,1), P(2,2), FC(128), SM(10)]"')
    _add_data_options(p, default_dataset="mnist")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, default=None, help="epochs (default 20)")
    budget.add_argument("--steps", type=int, default=None, help="optimizer steps instead")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--space", default=None, help="also check the rules of this preset")
    _add_net_options(p)
    p.add_argument("--out", default=None, help="checkpoint path (default runs/train/...pt)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run_train(args: argparse.Namespace) -> int:
    from metaqnn.checkpoint import save_checkpoint
    from metaqnn.runinfo import run_metadata
    from metaqnn.training import TrainConfig, evaluate, train_architecture

    arch = _parse(args.architecture)
    if args.space is not None:
        _space(args.space).validate(arch)
    config = TrainConfig(
        epochs=args.epochs if args.epochs is not None else TrainConfig.epochs,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
    )
    net_config = _net_config(args)
    device = _device(args.device)
    start = time.perf_counter()
    data = _load(args)
    if arch.num_classes != data.spec.num_classes:
        raise ConfigError(
            f"{arch} ends in SM({arch.num_classes}) but {data.name} has "
            f"{data.spec.num_classes} classes"
        )
    result = train_architecture(
        arch, data.train, data.val, config, net_config=net_config, device=device,
        progress=not args.no_progress,
    )  # fmt: skip
    if result.status != "ok":
        print(f"metaqnn: training diverged: {result.reason}", file=sys.stderr)
        return EXIT_FAILED_RUN
    test = evaluate(result.model, data.test, batch_size=config.eval_batch_size)
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
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or f"runs/train/{data.name}__seed{args.seed}__{stamp}.pt")
    save_checkpoint(
        out, architecture=arch, net_config=net_config, train_config=config, dataset=data.name,
        input_shape=data.spec.input_shape, state_dict=result.state_dict(), metrics=metrics,
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


def _configure_evaluate(p: argparse.ArgumentParser) -> None:
    from metaqnn.cli_evaluate import SUBCOMMANDS

    sub = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    acc = sub.add_parser("accuracy", help="accuracy of a checkpoint on its dataset")
    acc.add_argument("checkpoint", help="a checkpoint written by `metaqnn train`")
    _add_data_options(acc, default_dataset=None)
    acc.add_argument("--split", choices=["test", "val"], default="test")
    for name, (configure, _, help_text) in SUBCOMMANDS.items():
        configure(sub.add_parser(name, help=help_text, description=help_text))


def _run_evaluate(args: argparse.Namespace) -> int:
    from metaqnn.checkpoint import load_checkpoint
    from metaqnn.cli_evaluate import SUBCOMMANDS
    from metaqnn.training import evaluate

    if args.what in SUBCOMMANDS:
        return SUBCOMMANDS[args.what][1](args)
    ckpt = load_checkpoint(args.checkpoint)
    device = _device(args.device)
    data = _load(args, name=ckpt.dataset)
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


# ------------------------------------------------------------------ demo
def _configure_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="digits", help="dataset name (see `datasets`)")
    p.add_argument("--data-root", default=None, help="data root (default: $METAQNN_DATA)")
    p.add_argument("--logdir", default="runs/demo", help="where the runs go")
    p.add_argument("--gtn-outer-steps", type=int, default=150, help="GTN meta-training steps")
    p.add_argument("--schedule", default="quick", help="the search's epsilon schedule")
    p.add_argument("--retrain-top", type=int, default=3, help="top models retrained on real data")
    p.add_argument("--epochs", type=int, default=10, help="retraining epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="delete the previous demo runs first")


def _run_demo(args: argparse.Namespace) -> int:
    """The main job, end to end: meta-train a GTN, search with it as the reward, report."""
    import shutil

    if args.gtn_outer_steps < 1 or args.retrain_top < 0 or args.epochs < 1:
        raise ConfigError(
            f"--gtn-outer-steps={args.gtn_outer_steps} and --epochs={args.epochs} "
            f"must be positive, --retrain-top={args.retrain_top} >= 0"
        )
    root = Path(args.logdir)
    if args.fresh and root.exists():
        shutil.rmtree(root)
    gtn, search = root / "gtn", root / "search"
    data = ["--dataset", args.dataset, "--seed", str(args.seed)]
    if args.data_root:
        data += ["--data-root", args.data_root]
    steps = []
    if (gtn / "checkpoint.pt").exists():
        steps.append(
            [
                "gtn",
                "train",
                "--resume",
                str(gtn),
                "--outer-steps",
                str(args.gtn_outer_steps),
                "--eval-archs",
                "5",
            ]
        )
    else:
        steps.append(
            [
                "gtn",
                "train",
                *data,
                "--outer-steps",
                str(args.gtn_outer_steps),
                "--inner-batch",
                "64",
                "--generator-hidden",
                "256",
                "--noise-dim",
                "32",
                "--outer-lr",
                "0.01",
                "--meta-batch",
                "256",
                "--eval-archs",
                "5",
                "--logdir",
                str(gtn),
            ]
        )
    if (search / "search.db").exists():
        steps.append(["search", "--resume", str(search)])
    else:
        steps.append(
            [
                "search",
                *data,
                "--reward",
                "gtn",
                "--gtn-checkpoint",
                str(gtn),
                "--schedule",
                args.schedule,
                "--logdir",
                str(search),
            ]
        )
    steps.append(
        [
            "report",
            str(search),
            "--top",
            "10",
            "--retrain-top",
            str(args.retrain_top),
            "--epochs",
            str(args.epochs),
        ]
        + (["--data-root", args.data_root] if args.data_root else [])
    )
    start = time.perf_counter()
    for argv in steps:
        print(f"\n$ metaqnn {' '.join(argv)}", flush=True)
        code = main(argv)
        if code:
            return code
    print(
        f"\ndemo done in {time.perf_counter() - start:.0f} s; TensorBoard: tensorboard "
        f"--logdir {root}; the report is in {search / 'report'}"
    )
    return 0


def _configure_gtn(p: argparse.ArgumentParser) -> None:
    from metaqnn import cli_gtn

    sub = p.add_subparsers(dest="gtn_command", required=True, metavar="WHAT")
    for name, (configure, help_text) in {
        "train": (cli_gtn.configure_train, "meta-train a GTN teacher (resumable)"),
        "sample": (cli_gtn.configure_sample, "write a PNG grid of generated samples per class"),
        "eval": (cli_gtn.configure_eval, "an architecture trained by GTN vs real data"),
    }.items():
        configure(sub.add_parser(name, help=help_text, description=help_text))


def _run_gtn(args: argparse.Namespace) -> int:
    from metaqnn import cli_gtn

    runs = {"train": cli_gtn.run_train, "sample": cli_gtn.run_sample, "eval": cli_gtn.run_eval}
    return runs[args.gtn_command](args)


def _configure_lopt(p: argparse.ArgumentParser) -> None:
    from metaqnn import cli_lopt

    sub = p.add_subparsers(dest="lopt_command", required=True, metavar="WHAT")
    for name, (configure, help_text) in cli_lopt.SUBCOMMANDS.items():
        configure(sub.add_parser(name, help=help_text, description=help_text))


def _run_lopt(args: argparse.Namespace) -> int:
    from metaqnn import cli_lopt

    return cli_lopt.RUNS[args.lopt_command](args)


def _configure_search(p: argparse.ArgumentParser) -> None:
    from metaqnn import cli_search

    cli_search.configure_search(p)


def _run_search(args: argparse.Namespace) -> int:
    from metaqnn import cli_search

    return cli_search.run_search(args)


def _configure_report(p: argparse.ArgumentParser) -> None:
    from metaqnn import cli_search

    cli_search.configure_report(p)


def _run_report(args: argparse.Namespace) -> int:
    from metaqnn import cli_search

    return cli_search.run_report(args)


#: The subcommands, in help order.
COMMANDS: dict[str, Command] = {
    "demo": Command(
        "sample architectures, train each briefly, rank them", _configure_demo, _run_demo
    ),
    "train": Command(
        "train one architecture on real data, save a checkpoint", _configure_train, _run_train
    ),
    "search": Command(
        "MetaQNN search: Q-learning over the space, GTN or real-data rewards (resumable)",
        _configure_search,
        _run_search,
    ),
    "report": Command(
        "a search's top models, Figure 3, retraining of the top K",
        _configure_report,
        _run_report,
    ),
    "evaluate": Command("evaluate a checkpoint", _configure_evaluate, _run_evaluate),
    "gtn": Command("Generative Teaching Networks: train, sample, eval", _configure_gtn, _run_gtn),
    "lopt": Command(
        "learned optimizer for robustness (Metz et al. 2019): train, eval",
        _configure_lopt,
        _run_lopt,
    ),
    "validate": Command(
        "check an architecture against a search space", _configure_validate, _run_validate
    ),
    "sample": Command(
        "print random valid architectures of a search space", _configure_sample, _run_sample
    ),
    "space": Command(
        "describe a search space: actions, states, rules", _configure_space, _run_space
    ),
    "datasets": Command(
        "list the datasets and whether their files are here", _configure_datasets, _run_datasets
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="metaqnn", description="CNN architecture search with MetaQNN and GTN rewards."
    )
    parser.add_argument("--version", action="version", version=f"metaqnn {metaqnn.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        command.configure(sub.add_parser(name, help=command.help, description=command.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command].run(args)
    except (MetaQNNError, ArchitectureError) as exc:
        message = " ".join(str(exc).split())
        print(f"metaqnn: error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("metaqnn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
