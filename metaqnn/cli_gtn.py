"""``metaqnn gtn ...``: meta-train a GTN teacher (resumable), view its samples, evaluate it."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from envs.layers import Architecture
from envs.space import get_space
from gtn.distill import DistilledData
from gtn.inner_loop import INITIAL_LR, STEP_RULES, step_rule
from gtn.meta import (
    CHECKPOINT_NAME,
    MetaConfig,
    MetaTrainer,
    checkpoint_file,
    load_meta_checkpoint,
    teacher_from_checkpoint,
)
from gtn.teacher import GTNTeacher
from metaqnn.errors import CheckpointError, ConfigError
from metaqnn.markdown import markdown_table
from metaqnn.nets import NetConfig
from metaqnn.runinfo import run_metadata
from metaqnn.teaching import (
    PAPER_LEARNERS,
    distill_config,
    fixed_learner_factory,
    space_learner_factory,
    teacher_config,
)

CHECKPOINT = CHECKPOINT_NAME


# ------------------------------------------------------------------ helpers
def _load_state(path: str) -> tuple[Path, dict[str, Any]]:
    """A checkpoint path or run folder -> (checkpoint path, its dict)."""
    ckpt = checkpoint_file(path)
    try:
        return ckpt, load_meta_checkpoint(ckpt)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None


def _space_for(extra: dict[str, Any]):
    try:
        return get_space(extra["space"]).scale_widths(int(extra.get("width_divisor", 1)))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _learner_factory(extra: dict[str, Any], data, device):
    net = NetConfig(**extra["net_config"])
    if extra["learner"] == "space":
        return space_learner_factory(_space_for(extra), data, net, device)
    return fixed_learner_factory(Architecture.parse(extra["learner"]), data, net, device)


def _test_accuracy(model: torch.nn.Module, data) -> float:
    from metaqnn.training import evaluate

    return evaluate(model, data.test).accuracy


def _summary(
    teacher: GTNTeacher, extra: dict[str, Any], data, device, count: int
) -> list[list[str]]:
    """Test accuracy after the teacher's steps for the paper learner and ``count`` sampled
    architectures (seeds apart from meta-training's)."""
    net = NetConfig(**extra["net_config"])
    archs = []
    if data.name in PAPER_LEARNERS:
        archs.append(("paper learner", Architecture.parse(PAPER_LEARNERS[data.name])))
    space = _space_for(extra)
    rng = np.random.default_rng(10_000_019)
    archs += [("sampled", space.sample(rng)) for _ in range(count)]
    rows = []
    for kind, arch in archs:
        learner = fixed_learner_factory(arch, data, net, device)(1)
        teacher.teach(learner, seed=1)
        rows.append([kind, f"{_test_accuracy(learner, data):.4f}", str(arch)])
    return rows


#: Teacher settings a warm start may change from its ``--init-from`` run: the curriculum's
#: learned inputs are rebuilt at the new shape and fitted afresh, the generator and the learned
#: schedule carry over.
REFIT_MAY_CHANGE = frozenset({"inner_batch"})


def _init_from(teacher, path: str, dataset: str, *, refit: bool = False) -> list[str]:
    """Load the teacher weights of another run into ``teacher`` (same kind and shape).

    With ``refit`` (a warm start follows), settings in :data:`REFIT_MAY_CHANGE` may differ:
    then the generator and the schedule are loaded and the curriculum is left to the fit.
    Returns the settings that differed.
    """
    ckpt, state = _load_state(path)
    if state["kind"] != teacher.checkpoint_kind:
        raise ConfigError(
            f"--init-from {ckpt} holds a {state['kind']!r} teacher, this run "
            f"trains a {teacher.checkpoint_kind!r} one"
        )
    if state.get("extra", {}).get("dataset", dataset) != dataset:
        raise ConfigError(
            f"--init-from {ckpt} teaches {state['extra']['dataset']!r}, this run is on {dataset!r}"
        )
    ours = teacher.config.to_dict()
    diff = {k: (v, ours.get(k)) for k, v in state["teacher_config"].items() if ours.get(k) != v}
    allowed = REFIT_MAY_CHANGE if refit else frozenset()
    if set(diff) - allowed:
        names = ", ".join(sorted(REFIT_MAY_CHANGE))
        if refit:
            hint = f"; with --warm-start only {names} may differ"
        elif set(diff) <= REFIT_MAY_CHANGE:  # the one way this run could still start
            hint = f"; with --warm-start, {names} may differ"
        else:
            hint = ""
        raise ConfigError(
            f"--init-from {ckpt}: teacher settings differ (theirs, ours): {diff}{hint}"
        )
    weights = state["teacher"]
    if diff:  # a new curriculum shape: keep ours (the warm start fits it)
        weights = {k: v for k, v in weights.items() if not k.startswith("curriculum.")}
        weights |= {f"curriculum.{k}": v for k, v in teacher.curriculum.state_dict().items()}
    teacher.load_state_dict(weights)
    return sorted(diff)


def _warm_start(teacher: GTNTeacher, data, args: argparse.Namespace) -> dict[str, Any]:
    """Fit the teacher to paired real images (:mod:`gtn.warmstart`); what to record."""
    from gtn.warmstart import WarmStartConfig, fit_to_real

    config = WarmStartConfig(steps=args.warm_start, lr=args.warm_start_lr, seed=args.seed,
                             select=args.warm_start_select)  # fmt: skip
    start = time.perf_counter()
    losses = fit_to_real(teacher, data.train.x, data.train.y, config, progress=not args.no_progress)
    seconds = time.perf_counter() - start
    tail = float(np.mean(losses[-20:]))
    print(f"warm start: {config.steps} fit steps in {seconds:.0f} s, mean squared error "
          f"{losses[0]:.3f} -> {tail:.3f} (last 20)")  # fmt: skip
    return {**dataclasses.asdict(config), "first_mse": losses[0], "final_mse": tail,
            "seconds": round(seconds, 1)}  # fmt: skip


# ------------------------------------------------------------------ gtn train
def configure_train(p: argparse.ArgumentParser) -> None:
    from metaqnn.cli import _add_data_options

    _add_data_options(p, default_dataset="digits")
    p.add_argument(
        "--learner",
        default="space",
        help='"space" (a fresh architecture every outer step), "paper", or an architecture',
    )
    p.add_argument("--space", default=None, help="search-space preset (default: the dataset's)")
    p.add_argument("--width-divisor", type=int, default=1, help="divide conv filters and FC widths")
    p.add_argument("--method", choices=["gtn", "dd"], default="gtn",
                   help="gtn: a generator; dd: Dataset Distillation (learned pixels)")  # fmt: skip
    p.add_argument("--dd-images-per-class", type=int, default=1)
    p.add_argument("--dd-steps", type=int, default=10, help="DD: distinct distilled batches")
    p.add_argument("--dd-epochs", type=int, default=3, help="DD: passes over them")
    p.add_argument("--curriculum", default="full", help="none, all-shuffled, shuffled-batch, full")
    p.add_argument("--inner-steps", type=int, default=32)
    p.add_argument("--inner-batch", type=int, default=128)
    p.add_argument("--soft-labels", action="store_true")
    p.add_argument(
        "--inner-rule",
        default="sgd",
        help=f"inner step rule ({', '.join(STEP_RULES)}): sgd (the paper's) or relative "
        "(each tensor moves in proportion to its norm; one schedule fits the whole space)",
    )
    p.add_argument("--init-lr", type=float, default=None,
                   help="initial inner learning rate (default: 0.02 for sgd, 0.03 for "
                   "relative)")  # fmt: skip
    p.add_argument("--generator-hidden", type=int, default=1024)
    p.add_argument("--noise-dim", type=int, default=128)
    p.add_argument("--outer-steps", type=int, default=None,
                   help="outer steps (default 2000); with --resume, extends a run (the cosine "
                   "schedule is recomputed for the new total)")  # fmt: skip
    p.add_argument("--outer-lr", type=float, default=0.02)
    p.add_argument("--meta-batch", type=int, default=128)
    p.add_argument("--intermediate-every", type=int, default=0)
    p.add_argument("--truncate", type=int, default=None, help="backprop through the last N steps")
    p.add_argument("--checkpoint-inner", action="store_true",
                   help="gradient checkpointing of the inner steps (same meta-gradient, memory "
                   "bounded by the parameters per step; about 1.3-1.5x the time)")  # fmt: skip
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--max-minutes", type=float, default=None, help="stop (and save) after this")
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument("--logdir", default=None, help="run folder (default runs/gtn/<dataset>__...)")
    p.add_argument("--resume", default=None, help="run folder or checkpoint to continue")
    p.add_argument(
        "--init-from",
        default=None,
        help="start from the teacher of another run (e.g. one meta-trained on the "
        "paper's learner) with a fresh outer optimiser; with --warm-start, --inner-batch may "
        "differ from that run's (its generator and schedule carry over, the inputs are refitted)",
    )
    p.add_argument(
        "--warm-start",
        type=int,
        default=0,
        metavar="STEPS",
        help="before meta-training, fit the generator's batches to paired real images for "
        "this many Adam steps (0: off; 600 took 111 s on MNIST, 2 CPU cores; gtn/warmstart.py)",
    )
    p.add_argument("--warm-start-lr", type=float, default=1e-3)
    p.add_argument(
        "--warm-start-select",
        default="random",
        help="which real images the warm start fits: random, or kmeans (per class, the images "
        "nearest to k-means centres: a coreset covering the class)",
    )
    p.add_argument(
        "--meta-train",
        default="all",
        help="what the outer loop updates: all (generator, curriculum, schedule) or schedule "
        "(only the inner learning rates and momenta; keeps warm-started data as fitted)",
    )
    p.add_argument(
        "--eval-archs", type=int, default=10, help="sampled architectures to score at the end"
    )
    p.add_argument("--no-progress", action="store_true")


def run_train(args: argparse.Namespace) -> int:
    from metaqnn.cli import _device, _load

    device = _device(args.device)
    if args.warm_start and (args.resume or args.method != "gtn"):
        raise ConfigError(
            f"--warm-start {args.warm_start} fits a new GTN teacher (or one from --init-from) "
            "before meta-training; it cannot be combined with --resume or --method dd"
        )
    if args.resume:
        ckpt, state = _load_state(args.resume)
        extra = state["extra"]
        args.dataset, args.val_size, args.seed = extra["dataset"], extra["val_size"], extra["seed"]
        data = _load(args)
        teacher = teacher_from_checkpoint(state, device)
        meta = MetaConfig(**state["meta_config"])
        if args.outer_steps is not None:
            meta = dataclasses.replace(meta, outer_steps=args.outer_steps)
        run_dir = ckpt.parent
    else:
        data = _load(args)
        learner = args.learner
        if learner == "paper":
            if data.name not in PAPER_LEARNERS:
                raise ConfigError(f"no paper learner for {data.name}; pass an architecture")
            learner = PAPER_LEARNERS[data.name]
        elif learner != "space":
            learner = str(Architecture.parse(learner))
        extra = {
            "dataset": data.name, "val_size": len(data.val), "seed": args.seed, "learner": learner,
            "space": args.space or data.spec.preset, "width_divisor": args.width_divisor,
            "net_config": dataclasses.asdict(NetConfig(**_gtn_net())),
        }  # fmt: skip
        try:
            if args.method == "dd":
                config = distill_config(
                    data, images_per_class=args.dd_images_per_class, steps=args.dd_steps,
                    epochs=args.dd_epochs, seed=args.seed,
                )  # fmt: skip
                teacher = DistilledData(config).to(device)
            else:
                step_rule(args.inner_rule)  # a bad name is a one-line error naming it
                config = teacher_config(
                    data, curriculum=args.curriculum, inner_steps=args.inner_steps,
                    inner_batch=args.inner_batch, soft_labels=args.soft_labels, seed=args.seed,
                    generator_hidden=args.generator_hidden, generator_noise_dim=args.noise_dim,
                    inner_rule=args.inner_rule,
                    init_lr=args.init_lr or INITIAL_LR[args.inner_rule],
                )  # fmt: skip
                teacher = GTNTeacher(config).to(device)
            if args.init_from:
                changed = _init_from(teacher, args.init_from, data.name,
                                     refit=bool(args.warm_start))  # fmt: skip
                extra["init_from"] = str(args.init_from)
                if changed:
                    extra["init_from_changed"] = changed
            if args.warm_start:
                extra["warm_start"] = _warm_start(teacher, data, args)
            meta = MetaConfig(
                outer_steps=args.outer_steps or 2000, outer_lr=args.outer_lr,
                meta_batch=args.meta_batch,
                intermediate_every=args.intermediate_every, truncate=args.truncate,
                checkpoint=args.checkpoint_inner, grad_clip=args.grad_clip, seed=args.seed,
                checkpoint_every=args.checkpoint_every, train=args.meta_train,
            )  # fmt: skip
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        label = "dd" if args.method == "dd" else args.curriculum
        run_dir = Path(args.logdir or f"runs/gtn/{data.name}__{label}__seed{args.seed}__{stamp}")
        state = None
    factory = _learner_factory(extra, data, device)
    trainer = MetaTrainer(teacher, factory, data.train.x, data.train.y, meta, logdir=run_dir,
                          checkpoint_path=run_dir / CHECKPOINT, extra=extra)  # fmt: skip
    if state is not None:
        trainer.load_state(state)
    (run_dir / "config.json").write_text(json.dumps({
        "teacher": teacher.config.to_dict(), "meta": dataclasses.asdict(meta), "extra": extra,
        "run": run_metadata(device), "command": vars(args),
    }, indent=2, default=str))  # fmt: skip
    print(f"GTN meta-training on {data.source} ({len(data.train)} train images), learner "
          f"{extra['learner']}, run folder {run_dir}")  # fmt: skip
    start = time.perf_counter()
    limit = None if args.max_minutes is None else 60 * args.max_minutes
    trainer.run(progress=not args.no_progress, time_limit_s=limit)
    trainer.save(run_dir / CHECKPOINT)
    elapsed = time.perf_counter() - start
    recent = trainer.history[-20:]
    mean_acc = float(np.mean([r.accuracy for r in recent])) if recent else float("nan")
    skipped = sum(r.skipped for r in trainer.history)
    print(
        f"outer step {trainer.step}/{meta.outer_steps} in {elapsed:.0f} s; learner accuracy on "
        f"real meta-batches (last {len(recent)} steps) {mean_acc:.3f}; {skipped} steps skipped"
    )
    if args.eval_archs or data.name in PAPER_LEARNERS:
        rows = _summary(trainer.teacher, extra, data, device, args.eval_archs)
        print(f"test accuracy after {teacher.config.inner_steps} synthetic steps:")
        print(markdown_table(["learner", "test acc", "architecture"], rows))
    print(f"checkpoint {run_dir / CHECKPOINT}; resume with: metaqnn gtn train --resume {run_dir}")
    return 0


def _gtn_net() -> dict[str, Any]:
    from metaqnn.teaching import GTN_LEARNER

    return dataclasses.asdict(GTN_LEARNER)


# ------------------------------------------------------------------ gtn sample
def configure_sample(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="GTN run folder or checkpoint")
    p.add_argument("--out", default=None, help="PNG path (default: <run folder>/samples.png)")
    p.add_argument("--per-class", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)


def run_sample(args: argparse.Namespace) -> int:
    from torchvision.utils import save_image

    ckpt, state = _load_state(args.checkpoint)
    teacher = teacher_from_checkpoint(state)
    grid = teacher.sample_grid(per_class=args.per_class, seed=args.seed)  # (C, K*H, n*W)
    out = Path(args.out or ckpt.parent / "samples.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, out)
    print(f"wrote {out}: one row per class, {args.per_class} samples each")
    return 0


# ------------------------------------------------------------------ gtn eval
def configure_eval(p: argparse.ArgumentParser) -> None:
    from metaqnn.cli import _add_data_options

    p.add_argument("checkpoint", help="GTN run folder or checkpoint")
    p.add_argument("architecture", help="the learner to train")
    _add_data_options(p, default_dataset=None)
    p.add_argument("--steps", type=int, default=None, help="inner steps (default: the teacher's)")
    p.add_argument("--seeds", type=int, default=3, help="learner initialisations")
    p.add_argument(
        "--real-lrs", default="0.001,0.003,0.01", help="Adam lrs of the real-data baseline"
    )
    p.add_argument("--dd", default=None, help="a Dataset Distillation run (gtn train --method dd)")


def run_eval(args: argparse.Namespace) -> int:
    from metaqnn.cli import _device, _load
    from metaqnn.training import TrainConfig, train_model

    device = _device(args.device)
    _, state = _load_state(args.checkpoint)
    extra = state["extra"]
    data = _load(args, name=extra["dataset"])
    teacher = teacher_from_checkpoint(state, device)
    arch = Architecture.parse(args.architecture)
    steps = args.steps or teacher.config.inner_steps
    batch = teacher.config.inner_batch
    net = NetConfig(**extra["net_config"])
    factory = fixed_learner_factory(arch, data, net, device)
    rows = []
    start = time.perf_counter()
    gtn = []
    for seed in range(args.seeds):
        learner = teacher.teach(factory(seed), steps, seed=seed)
        gtn.append(_test_accuracy(learner, data))
    gtn_s = (time.perf_counter() - start) / args.seeds
    method = "GTN" if state["kind"] == GTNTeacher.checkpoint_kind else "DD"
    rows.append(
        [f"{method}, {steps} steps", f"{np.mean(gtn):.4f} ± {np.std(gtn):.4f}", f"{gtn_s:.2f}"]
    )
    if args.dd:
        dd_state = _load_state(args.dd)[1]
        if dd_state["extra"]["dataset"] != data.name:
            raise ConfigError(f"--dd {args.dd} was trained on {dd_state['extra']['dataset']}")
        dd = teacher_from_checkpoint(dd_state, device)
        accs, start = [], time.perf_counter()
        for seed in range(args.seeds):
            accs.append(_test_accuracy(dd.teach(factory(seed), seed=seed), data))
        dd_s = (time.perf_counter() - start) / args.seeds
        label = f"DD, {dd.config.inner_steps} steps of {dd.config.inner_batch}"
        rows.append([label, f"{np.mean(accs):.4f} ± {np.std(accs):.4f}", f"{dd_s:.2f}"])
    for lr in [float(v) for v in args.real_lrs.split(",")]:
        accs, start = [], time.perf_counter()
        for seed in range(args.seeds):
            config = TrainConfig(steps=steps, batch_size=batch, lr=lr, seed=seed, max_restarts=0)
            result = train_model(
                lambda s=seed: factory(s), data.train, data.val, config, device=device
            )
            accs.append(_test_accuracy(result.model, data))
        real_s = (time.perf_counter() - start) / args.seeds
        label = f"real data, Adam lr {lr:g}, {steps} steps"
        rows.append([label, f"{np.mean(accs):.4f} ± {np.std(accs):.4f}", f"{real_s:.2f}"])
    print(
        f"{arch} on {data.source}, test accuracy over {args.seeds} initialisations, batch {batch}:"
    )
    print(markdown_table(["trained with", "test acc (mean ± std)", "s per model"], rows))
    return 0
