"""``metaqnn evaluate robustness|transfer|correlation``: the evaluation module on the command line.

Each subcommand writes into an output folder: ``report.md`` (the markdown tables, also printed),
``report.json``, PNG figures and TensorBoard scalars under ``eval/`` in ``tb/``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from metaqnn.cli.options import add_data_options, load_data, names, torch_device
from metaqnn.errors import ConfigError

_KURAKIN = "in levels of 1/255 (Kurakin's units)"


def _csv(values: tuple[float, ...]) -> str:
    """``values`` as a comma list for a help text (``0,0.5,1``)."""
    return ",".join(f"{v:g}" for v in values)


# ------------------------------------------------------------------ helpers
def _numbers(text: str | None, option: str, *, low: float = 0.0, high: float = math.inf):
    """A comma-separated list of numbers in [low, high] (None stays None)."""
    if text is None:
        return None
    values = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        try:
            value = float(item)
        except ValueError:
            raise ConfigError(f"{option}: {item!r} is not a number") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise ConfigError(f"{option}: {item!r} is outside [{low:g}, {high:g}]")
        values.append(value)
    if not values:
        raise ConfigError(f"{option}: no values in {text!r}")
    return tuple(values)


def checkpoint_data(args: argparse.Namespace, ckpt: Any, *, split: str = "test") -> Any:
    """The checkpoint's dataset, split as it was when the model was trained.

    The validation images must be those training held out: the split ``metaqnn train``
    recorded (its ``seed`` and ``val_size``) is used, whatever ``--seed`` and ``--val-size``
    say. A checkpoint that predates the record: the seed of its training config (``metaqnn
    train`` seeds the split and the training with the same ``--seed``) and ``--val-size``
    (default: the dataset's, as for training); when ``split == "val"`` a one-line warning says
    so on stderr, since the validation size is a guess.

    Args:
        args: Options of :func:`metaqnn.cli.options.add_data_options`.
        ckpt: A :class:`metaqnn.core.checkpoint.Checkpoint`.
        split: The split that will be evaluated (``"test"`` or ``"val"``).

    Returns:
        The :class:`metaqnn.core.data.Dataset`.
    """
    from metaqnn.design.selection import selects_by_folds

    folds = (ckpt.metrics or {}).get("folds") or 0
    if split == "val" and isinstance(folds, int) and selects_by_folds(folds):
        raise ConfigError(f"{ckpt.path} was picked by {folds}-fold cross-validation and then "
                          "refitted on its validation images too, so its validation accuracy "
                          "would be training accuracy: evaluate the test split (its "
                          "cross-validated accuracy is in the checkpoint's metrics, "
                          "val_accuracy)")  # fmt: skip
    if ckpt.split is not None:
        seed, val_size = ckpt.split["seed"], ckpt.split["val_size"]
    else:
        seed = ckpt.train_config.seed if ckpt.train_config is not None else args.seed
        val_size = args.val_size
        if split == "val":
            size = "the dataset's default" if val_size is None else str(val_size)
            print(f"metaqnn: warning: {ckpt.path} records no dataset split; assuming seed {seed} "
                  f"and {size} validation size (check that these are the images training held "
                  "out)", file=sys.stderr)  # fmt: skip
    given = argparse.Namespace(**{**vars(args), "seed": seed, "val_size": val_size})
    return load_data(given, name=ckpt.dataset)


def _out_dir(args: argparse.Namespace, kind: str, stem: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or f"runs/eval/{stem}__{kind}__{stamp}")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _write(out: Path, markdown: str, payload: dict[str, Any]) -> None:
    (out / "report.md").write_text(markdown)
    (out / "report.json").write_text(json.dumps(payload, indent=2, default=str))


def _scalars(log_dir: Path, values: dict[str, float], text: str) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(log_dir)) as writer:
        for tag, value in values.items():
            writer.add_scalar(tag, value, 0)
        writer.add_text("eval/report", text, 0)


# ------------------------------------------------------------------ robustness
def configure_robustness(p: argparse.ArgumentParser) -> None:
    """Options of ``metaqnn evaluate robustness``."""
    from metaqnn.evaluation.attacks import ATTACKS
    from metaqnn.evaluation.corruption_levels import IMAGE_KINDS
    from metaqnn.evaluation.corruptions import CORRUPTIONS
    from metaqnn.evaluation.robustness import RobustnessConfig

    d = RobustnessConfig()
    p.add_argument("checkpoint", help="a checkpoint written by `metaqnn train`")
    p.add_argument("--dataset", default=None, help="dataset (default: the checkpoint's)")
    add_data_options(p, default_dataset=None, checkpoint_split=True,
                     seed_help="seed of noise, corruptions and random starts (and of an "
                     "unrecorded split)")  # fmt: skip
    p.add_argument("--split", choices=["test", "val"], default="test", help="split to evaluate")
    p.add_argument("--max-images", type=int, default=None,
                   help="use the first N images of the split (default: all)")  # fmt: skip
    p.add_argument("--attack-images", type=int, default=None,
                   help="attack only the first N of them (default: all)")  # fmt: skip
    p.add_argument("--attacks", default=None,
                   help=f"comma list of {', '.join(ATTACKS)}; default all")  # fmt: skip
    p.add_argument("--epsilons", default=None, help=f"comma list {_KURAKIN}; default 4,8,16,32")
    p.add_argument("--beta", type=float, default=None,
                   help=f"strength of the lbfgs attack (default: {d.beta:g})")  # fmt: skip
    p.add_argument("--corruptions", default=None,
                   help=f"comma list of {', '.join(CORRUPTIONS)}; default all")  # fmt: skip
    p.add_argument("--corruption-kind", default=None, metavar="KIND",
                   help=f"whose severity levels the corruptions use: {', '.join(IMAGE_KINDS)} "
                   "(MNIST-C's or CIFAR-10-C's; default: read from the images, mnist for grey "
                   "images of at most 28x28)")  # fmt: skip
    p.add_argument("--destruction-attacks", default=None,
                   help="comma list of attacks whose destruction rates are measured; default "
                   f"{','.join(d.destruction_attacks)}")  # fmt: skip
    p.add_argument("--destruction-epsilon", default=None,
                   help=f"epsilon of the destruction attacks {_KURAKIN}; default 16")  # fmt: skip
    noise, blur = _csv(d.noise_strengths), _csv(d.blur_strengths)
    p.add_argument("--noise", default=None, help=f"noise sweep betas (pixel std); default {noise}")
    p.add_argument("--blur", default=None, help=f"blur sweep betas (std, pixels); default {blur}")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    p.add_argument("--out", default=None, help="output folder (default: runs/eval/...)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _robustness_config(args: argparse.Namespace):
    from metaqnn.evaluation.attacks import ATTACKS
    from metaqnn.evaluation.corruptions import CORRUPTIONS
    from metaqnn.evaluation.robustness import RobustnessConfig

    epsilons = _numbers(args.epsilons, "--epsilons", high=255)
    destruction = _numbers(args.destruction_epsilon, "--destruction-epsilon", high=255)
    given = {
        "attacks": names(args.attacks, ATTACKS, "attack"),
        "epsilons": None if epsilons is None else tuple(e / 255 for e in epsilons),
        "beta": args.beta,
        "corruptions": names(args.corruptions, CORRUPTIONS, "corruption"),
        "corruption_kind": args.corruption_kind,
        "destruction_attacks": names(args.destruction_attacks, ATTACKS, "attack"),
        "destruction_epsilon": None if destruction is None else destruction[0] / 255,
        "noise_strengths": _numbers(args.noise, "--noise"),
        "blur_strengths": _numbers(args.blur, "--blur"),
        "attack_images": args.attack_images,
        "batch_size": args.batch_size,
        "seed": args.seed,
    }
    return RobustnessConfig(**{k: v for k, v in given.items() if v is not None})


def run_robustness(args: argparse.Namespace) -> int:
    """Run ``metaqnn evaluate robustness``: the report, its figures and scalars."""
    from metaqnn.core.checkpoint import load_checkpoint
    from metaqnn.evaluation.pixels import PixelModel
    from metaqnn.evaluation.report import (
        plot_robustness,
        robustness_markdown,
        write_scalars,
    )
    from metaqnn.evaluation.robustness import evaluate_robustness

    config = _robustness_config(args)
    if args.max_images is not None and args.max_images < 1:
        raise ConfigError(f"--max-images must be positive, got {args.max_images}")
    ckpt = load_checkpoint(args.checkpoint)
    device = torch_device(args.device)
    start = time.perf_counter()
    if args.dataset in (None, ckpt.dataset):  # the split the model was trained with
        data = checkpoint_data(args, ckpt, split=args.split)
    else:
        data = load_data(args, name=args.dataset)
    if tuple(data.spec.input_shape) != tuple(ckpt.input_shape):
        raise ConfigError(f"{args.checkpoint} expects inputs {ckpt.input_shape}, {data.name} "
                          f"has {data.spec.input_shape}")  # fmt: skip
    # The model expects the normalisation of the data it was trained on: the checkpoint's own
    # record, else (older checkpoints) that of its dataset loaded with the default split.
    norm = ckpt.metrics.get("normalization")
    if norm is None:
        stats = data if data.name == ckpt.dataset else checkpoint_data(args, ckpt)
        norm = {"mean": stats.mean, "std": stats.std}
    model = PixelModel(ckpt.build_model(device), tuple(norm["mean"]), tuple(norm["std"]))
    split = getattr(data, args.split)
    n = len(split) if args.max_images is None else min(args.max_images, len(split))
    pixels = data.denormalize(split.x[:n]).clamp_(0.0, 1.0)  # (n, C, H, W)
    report = evaluate_robustness(model, pixels, split.y[:n], config,
                                 progress=not args.no_progress)  # fmt: skip
    title = f"Robustness of {ckpt.architecture} on {data.source} ({args.split})"
    markdown = robustness_markdown(report, title=title)
    out = _out_dir(args, "robustness", Path(args.checkpoint).stem)
    payload = {"checkpoint": str(args.checkpoint), "dataset": data.name, "split": args.split,
               "architecture": str(ckpt.architecture), **report.to_dict()}  # fmt: skip
    _write(out, markdown, payload)
    figures = plot_robustness(report, out)
    write_scalars(report, out / "tb")
    print(markdown)
    print(f"total {time.perf_counter() - start:.1f} s on {device}; wrote {out}/report.md, "
          f"report.json, {len(figures)} figures and tb/")  # fmt: skip
    return 0


# ------------------------------------------------------------------ transfer
def configure_transfer(p: argparse.ArgumentParser) -> None:
    """Options of ``metaqnn evaluate transfer``."""
    from metaqnn.evaluation.transfer import TRANSFER_MODES

    p.add_argument("checkpoint", help="the source model, written by `metaqnn train`")
    p.add_argument("--to", dest="targets", action="append", required=True, metavar="DATASET",
                   help="dataset to transfer to (repeatable)")  # fmt: skip
    modes = ", ".join(TRANSFER_MODES)
    p.add_argument("--modes", default=None, help=f"comma list of {modes}; default all that fit")
    add_data_options(p, default_dataset=None)
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, default=None, help="epochs per run (default: 1)")
    budget.add_argument("--steps", type=int, default=None, help="optimizer steps instead of epochs")
    p.add_argument("--batch-size", type=int, default=128, help="training mini-batch size")
    p.add_argument("--lr", type=float, default=1e-3, help="initial Adam learning rate")
    p.add_argument("--out", default=None, help="output folder (default: runs/eval/...)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_transfer(args: argparse.Namespace) -> int:
    """Run ``metaqnn evaluate transfer``: scratch vs finetuned on each target dataset."""
    from metaqnn.core.checkpoint import load_checkpoint
    from metaqnn.core.training import TrainConfig, evaluate
    from metaqnn.evaluation.report import markdown_table
    from metaqnn.evaluation.transfer import TRANSFER_MODES, transfer

    modes = names(args.modes, TRANSFER_MODES, "transfer mode")
    ckpt = load_checkpoint(args.checkpoint)
    device = torch_device(args.device)
    epochs = args.epochs if args.epochs is not None else 1
    config = TrainConfig(epochs=epochs, steps=args.steps, batch_size=args.batch_size,
                         lr=args.lr, seed=args.seed)  # fmt: skip
    source = checkpoint_data(args, ckpt)
    source_acc = evaluate(ckpt.build_model(device), source.test).accuracy
    rows, runs = [], []
    for name in args.targets:
        target = load_data(args, name=name)
        fits = (target.spec.input_shape == tuple(ckpt.input_shape)
                and target.spec.num_classes == ckpt.num_classes)  # fmt: skip
        chosen = modes or tuple(m for m in TRANSFER_MODES if fits or m != "as_is")
        for run in transfer(ckpt, target, config, modes=chosen, device=device,
                            progress=not args.no_progress):  # fmt: skip
            runs.append(run)
            rows.append([run.target, run.mode, f"{100 * run.test_accuracy:.2f}",
                         f"{100 * (1 - run.test_accuracy):.2f}", run.steps,
                         f"{run.wall_time_s:.1f}", len(run.reinitialised)])  # fmt: skip
    budget = f"{config.steps} steps" if config.steps else f"{config.epochs} epochs"
    markdown = "\n\n".join([
        f"# Transfer of {ckpt.architecture} from {source.source}",
        f"Source test accuracy {100 * source_acc:.2f} %. Each run: {budget}, batch "
        f"{config.batch_size}, lr {config.lr:g}, seed {config.seed} (same for every mode).",
        markdown_table(["target", "mode", "test accuracy %", "test error %", "steps", "seconds",
                        "re-initialised tensors"], rows),
    ]) + "\n"  # fmt: skip
    out = _out_dir(args, "transfer", Path(args.checkpoint).stem)
    _write(out, markdown, {"checkpoint": str(args.checkpoint), "source": ckpt.dataset,
                           "source_test_accuracy": source_acc,
                           "runs": [run.__dict__ for run in runs]})  # fmt: skip
    scalars = {f"eval/transfer/{r.target}/{r.mode}/test_accuracy": r.test_accuracy for r in runs}
    _scalars(out / "tb", {"eval/transfer/source_test_accuracy": source_acc, **scalars}, markdown)
    print(markdown)
    print(f"wrote {out}/report.md, report.json and tb/")
    return 0


# ------------------------------------------------------------------ correlation
def configure_correlation(p: argparse.ArgumentParser) -> None:
    """Options of ``metaqnn evaluate correlation``."""
    p.add_argument("rewards", help="CSV or JSON file with two reward columns")
    p.add_argument("--cheap", required=True, help="column of the cheap reward (e.g. gtn)")
    p.add_argument("--reference", required=True, help="column of the reference reward")
    p.add_argument("--label", default="architecture", help="column naming each row")
    p.add_argument("--top-k", default="5,10", help="comma list of k for top-k overlap")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--confidence", type=float, default=0.95, help="interval coverage")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--out", default=None, help="output folder (default: runs/eval/...)")


def run_correlation(args: argparse.Namespace) -> int:
    """Run ``metaqnn evaluate correlation``: rank statistics, intervals, scatter plot."""
    from metaqnn.evaluation.correlation import load_reward_pairs, plot_scatter, rank_correlation
    from metaqnn.evaluation.report import markdown_table

    ks = _numbers(args.top_k, "--top-k", low=1)
    if any(k != int(k) for k in ks):
        raise ConfigError(f"--top-k: expected whole numbers, got {args.top_k!r}")
    pairs = load_reward_pairs(args.rewards, args.cheap, args.reference, label=args.label)
    result = rank_correlation(pairs.cheap, pairs.reference, ks=[int(k) for k in ks],
                              resamples=args.resamples, confidence=args.confidence,
                              seed=args.seed)  # fmt: skip
    level = f"{100 * args.confidence:g} %"
    estimates = {"Spearman rho": result.spearman, "Kendall tau": result.kendall,
                 "Spearman rho, reference top half": result.spearman_top_half,
                 **{f"top-{k} overlap": e for k, e in result.top_k.items()}}  # fmt: skip
    rows = [[name, f"{e.value:.4f}", f"[{e.low:.4f}, {e.high:.4f}]"]
            for name, e in estimates.items()]  # fmt: skip
    markdown = "\n\n".join([
        f"# Rank correlation of {args.cheap!r} with {args.reference!r}",
        f"{result.n} architectures from {args.rewards} ({pairs.dropped} rows without both "
        f"rewards dropped); {level} percentile-bootstrap intervals, {result.resamples} "
        f"resamples, seed {result.seed}.",
        markdown_table(["statistic", "value", f"{level} interval"], rows),
    ]) + "\n"  # fmt: skip
    out = _out_dir(args, "correlation", Path(args.rewards).stem)
    _write(out, markdown, {"rewards": str(args.rewards), "cheap": args.cheap,
                           "reference": args.reference, "dropped": pairs.dropped,
                           **result.to_dict()})  # fmt: skip
    plot_scatter(pairs.cheap, pairs.reference, out / "scatter.png",
                 names=(args.cheap, args.reference), result=result)  # fmt: skip
    tags = {"spearman": result.spearman, "kendall": result.kendall,
            "spearman_top_half": result.spearman_top_half,
            **{f"top{k}_overlap": e for k, e in result.top_k.items()}}  # fmt: skip
    _scalars(out / "tb", {f"eval/correlation/{t}": e.value for t, e in tags.items()}, markdown)
    print(markdown)
    print(f"wrote {out}/report.md, report.json, scatter.png and tb/")
    return 0


#: Subcommand -> (configure, run, help); ``accuracy`` stays in :mod:`metaqnn.cli.main`.
SUBCOMMANDS: dict[
    str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]
] = {
    "robustness": (configure_robustness, run_robustness,
                   "noise, blur, attacks, corruptions and destruction rates of a checkpoint"),
    "transfer": (configure_transfer, run_transfer,
                 "train a checkpoint's architecture on other datasets: scratch vs finetuned"),
    "correlation": (configure_correlation, run_correlation,
                    "rank correlation of a cheap and a reference reward (CSV or JSON)"),
}  # fmt: skip
