"""``metaqnn gtn ...``: meta-train a GTN teacher (resumable), view its samples, evaluate it."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from envs.layers import Architecture
from gtn.distill import DistilledData
from gtn.inner_loop import STEP_RULES
from gtn.meta import teacher_from_checkpoint
from gtn.teacher import GTNTeacher
from metaqnn.cli.options import (
    DefaultsHelpFormatter,
    add_data_options,
    load_data,
    refuse_on_resume,
    torch_device,
)
from metaqnn.core.nets import NetConfig
from metaqnn.core.outputs import atomic_write, check_output_path
from metaqnn.errors import ConfigError
from metaqnn.markdown import markdown_table
from metaqnn.teacher.run import CHECKPOINT, TeacherRun, load_state, test_accuracy, train_teacher
from metaqnn.teacher.shapes import fixed_learner_factory


# ------------------------------------------------------------------ gtn train
def configure_train(p: argparse.ArgumentParser) -> None:

    add_data_options(p, default_dataset="digits")
    p.add_argument(
        "--learner",
        default="space",
        help='"space" (a fresh architecture every outer step), "paper", or an architecture',
    )
    p.add_argument("--space", default=None, help="search-space preset (default: the dataset's)")
    p.add_argument("--width-divisor", type=int, default=1, help="divide conv filters and FC widths")
    p.add_argument("--method", choices=["gtn", "dd"], default="gtn",
                   help="gtn: a generator; dd: Dataset Distillation (learned pixels)")  # fmt: skip
    p.add_argument("--dd-images-per-class", type=int, default=1,
                   help="DD: images of each class in a distilled batch")  # fmt: skip
    p.add_argument("--dd-steps", type=int, default=10, help="DD: distinct distilled batches")
    p.add_argument("--dd-epochs", type=int, default=3, help="DD: passes over them")
    p.add_argument("--curriculum", default="full",
                   help="generator inputs: none (fresh noise), all-shuffled, shuffled-batch, "
                   "full (a learned sequence)")  # fmt: skip
    p.add_argument("--inner-steps", type=int, default=32, help="inner (learner) steps per teaching")
    p.add_argument("--inner-batch", type=int, default=None,
                   help="synthetic images per inner step (default: the dataset's)")  # fmt: skip
    p.add_argument("--soft-labels", action="store_true",
                   help="learn soft labels for the synthetic images, not one-hot")  # fmt: skip
    p.add_argument(
        "--inner-rule",
        default="sgd",
        help=f"inner step rule ({', '.join(STEP_RULES)}): sgd, the paper's; relative: each "
        "tensor moves in proportion to its norm",
    )
    p.add_argument("--init-lr", type=float, default=None,
                   help="initial inner learning rate (default: 0.02 for sgd, 0.03 for "
                   "relative)")  # fmt: skip
    p.add_argument("--generator-hidden", type=int, default=None,
                   help="generator hidden width (default: the dataset's)")  # fmt: skip
    p.add_argument("--noise-dim", type=int, default=None,
                   help="generator noise size (default: the dataset's)")  # fmt: skip
    p.add_argument("--outer-steps", type=int, default=None,
                   help="outer steps (default: 2000); with --resume, extends a run (the cosine "
                   "schedule is recomputed for the new total)")  # fmt: skip
    p.add_argument("--outer-lr", type=float, default=None,
                   help="outer Adam learning rate (default: the dataset's)")  # fmt: skip
    p.add_argument("--meta-batch", type=int, default=None,
                   help="real images per meta-loss (default: the dataset's)")  # fmt: skip
    p.add_argument("--intermediate-every", type=int, default=0, metavar="N",
                   help="meta-loss every N inner steps too (0: only at the end)")  # fmt: skip
    p.add_argument("--truncate", type=int, default=None, metavar="N",
                   help="backprop through the last N inner steps only (default: all)")  # fmt: skip
    p.add_argument("--checkpoint-inner", action="store_true",
                   help="gradient-checkpoint the inner steps: same meta-gradient, less memory, "
                   "1.3-1.5x the time")  # fmt: skip
    p.add_argument("--grad-clip", type=float, default=1.0,
                   help="clip the meta-gradient's norm to this (0: no clipping)")  # fmt: skip
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop (and save) after this many minutes")  # fmt: skip
    p.add_argument("--checkpoint-every", type=int, default=50,
                   help="outer steps between checkpoints")  # fmt: skip
    p.add_argument("--logdir", default=None, help="run folder (default: runs/gtn/<dataset>__...)")
    p.add_argument("--resume", default=None, help="run folder or checkpoint to continue")
    p.add_argument(
        "--init-from",
        default=None,
        help="start from another run's teacher with a fresh outer optimiser (with --warm-start, "
        "--inner-batch may differ)",
    )
    p.add_argument(
        "--warm-start",
        type=int,
        default=0,
        metavar="STEPS",
        help="first fit the generator's batches to paired real images for this many Adam steps "
        "(0: off)",
    )
    p.add_argument("--warm-start-lr", type=float, default=1e-3,
                   help="Adam learning rate of the --warm-start fit")  # fmt: skip
    p.add_argument(
        "--warm-start-select",
        default="random",
        help="real images the warm start fits: random, or kmeans (per class, those nearest to "
        "k-means centres)",
    )
    p.add_argument(
        "--meta-train",
        default="all",
        help="what the outer loop updates: all, or schedule (only inner lrs and momenta; keeps "
        "fitted data)",
    )
    p.add_argument(
        "--eval-archs", type=int, default=10, help="sampled architectures to score at the end"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


#: The teacher sizes that scale with the dataset; a dataset not in the design presets' teacher
#: recipes (or one that does not set a size) gets :class:`TeacherRun`'s, the GTN paper's.
SCALED = ("inner_batch", "generator_hidden", "noise_dim", "outer_lr", "meta_batch")


def scaled_defaults(dataset: str) -> dict[str, object]:
    """The defaults of :data:`SCALED` for ``dataset``: the design preset's teacher recipe
    where it sets them (digits: a 256-wide generator, 32 noise dims), else the paper's."""
    from metaqnn.design.presets import PRESETS

    base = {f.name: f.default for f in dataclasses.fields(TeacherRun) if f.name in SCALED}
    preset = PRESETS.get(dataset)
    teacher = preset.teacher if preset is not None else {}
    return {k: teacher.get(k, v) for k, v in base.items()}


#: What ``gtn train --resume`` applies; every other option is the run's own (in its checkpoint)
#: and is refused, so that nothing given is silently ignored.
CHANGEABLE_ON_RESUME = frozenset({
    "resume", "outer_steps", "max_minutes", "device", "data_root", "download", "no_progress",
    "eval_archs", "command", "gtn_command", "version",
})  # fmt: skip


def _refuse_fixed_on_resume(args: argparse.Namespace) -> None:
    """One line naming the options a ``--resume`` would otherwise ignore."""
    refuse_on_resume(
        args, set(getattr(args, "given_options", ())) - CHANGEABLE_ON_RESUME,
        kept_in="its checkpoint",
        hint="start a new run (--init-from starts one from this teacher)",
        changeable="--outer-steps (e.g. extend it), --max-minutes, --device, --data-root and "
        "--eval-archs",
    )  # fmt: skip


def run_train(args: argparse.Namespace) -> int:
    """``metaqnn gtn train``: the options as a :class:`TeacherRun`, then :func:`train_teacher`."""
    if args.resume:
        _refuse_fixed_on_resume(args)
    fields = {f.name for f in dataclasses.fields(TeacherRun)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    for name, default in scaled_defaults(args.dataset).items():
        if values.get(name) is None:
            values[name] = default
    result = train_teacher(TeacherRun(**values, progress=not args.no_progress))
    run_dir = result.run_dir
    print(f"checkpoint {run_dir / CHECKPOINT}; resume with: metaqnn gtn train --resume {run_dir}")
    return 0


# ------------------------------------------------------------------ gtn sample
def configure_sample(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="GTN run folder or checkpoint")
    p.add_argument("--out", default=None, help="PNG path (default: <run folder>/samples.png)")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.add_argument("--per-class", type=int, default=8, help="samples in each class's row")
    p.add_argument("--seed", type=int, default=0, help="seed of the curriculum's random draws")


def run_sample(args: argparse.Namespace) -> int:
    from torchvision.utils import save_image

    if args.out is not None:  # a file the user names is never replaced without --force
        check_output_path(args.out, force=args.force)
    ckpt, state = load_state(args.checkpoint)
    teacher = teacher_from_checkpoint(state)
    grid = teacher.sample_grid(per_class=args.per_class, seed=args.seed)  # (C, K*H, n*W)
    out = Path(args.out or ckpt.parent / "samples.png")
    atomic_write(out, lambda tmp: save_image(grid, tmp, format="png"))
    print(f"wrote {out}: one row per class, {args.per_class} samples each")
    return 0


# ------------------------------------------------------------------ gtn eval
def configure_eval(p: argparse.ArgumentParser) -> None:

    p.add_argument("checkpoint", help="GTN run folder or checkpoint")
    p.add_argument("architecture", help="the learner to train")
    add_data_options(p, default_dataset=None)
    p.add_argument("--steps", type=int, default=None, help="inner steps (default: the teacher's)")
    p.add_argument("--seeds", type=int, default=3, help="learner initialisations")
    p.add_argument(
        "--real-lrs",
        default="0.001,0.003,0.01",
        help="comma list of Adam lrs of the real-data baseline",
    )
    p.add_argument("--dd", default=None, help="a Dataset Distillation run (gtn train --method dd)")


def _dd_state(run: str, dataset: str) -> dict:
    """The checkpoint of ``--dd RUN``, refused unless it is a Dataset Distillation run of
    ``dataset``."""
    state = load_state(run)[1]
    if state["kind"] != DistilledData.checkpoint_kind:
        raise ConfigError(f"--dd {run} is a {state['kind']!r} run, not a Dataset "
                          "Distillation run (gtn train --method dd)")  # fmt: skip
    if state["extra"]["dataset"] != dataset:
        raise ConfigError(f"--dd {run} was trained on {state['extra']['dataset']}")
    return state


def run_eval(args: argparse.Namespace) -> int:
    from metaqnn.core.training import TrainConfig, train_model

    device = torch_device(args.device)
    _, state = load_state(args.checkpoint)
    extra = state["extra"]
    data = load_data(args, name=extra["dataset"])
    teacher = teacher_from_checkpoint(state, device)
    dd_state = _dd_state(args.dd, data.name) if args.dd else None
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
        gtn.append(test_accuracy(learner, data))
    gtn_s = (time.perf_counter() - start) / args.seeds
    method = "GTN" if state["kind"] == GTNTeacher.checkpoint_kind else "DD"
    rows.append(
        [f"{method}, {steps} steps", f"{np.mean(gtn):.4f} ± {np.std(gtn):.4f}", f"{gtn_s:.2f}"]
    )
    if dd_state is not None:
        dd = teacher_from_checkpoint(dd_state, device)
        accs, start = [], time.perf_counter()
        for seed in range(args.seeds):
            accs.append(test_accuracy(dd.teach(factory(seed), seed=seed), data))
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
            accs.append(test_accuracy(result.model, data))
        real_s = (time.perf_counter() - start) / args.seeds
        label = f"real data, Adam lr {lr:g}, {steps} steps"
        rows.append([label, f"{np.mean(accs):.4f} ± {np.std(accs):.4f}", f"{real_s:.2f}"])
    print(
        f"{arch} on {data.source}, test accuracy over {args.seeds} initialisations, batch {batch}:"
    )
    print(markdown_table(["trained with", "test acc (mean ± std)", "s per model"], rows))
    return 0


# ------------------------------------------------------------------ gtn list / export
def configure_list(p: argparse.ArgumentParser) -> None:
    """``gtn list`` takes no options."""


def run_list(args: argparse.Namespace) -> int:
    """Print the shipped teachers."""
    from gtn.pretrained import describe

    rows = describe()
    if not rows:
        print("no pretrained teachers are shipped with this install")
        return 0
    print(markdown_table(["name", "dataset", "size", "sha256", "about", "command"], rows))
    print(
        "use one by name: --gtn-checkpoint NAME (search, design), gtn eval|sample NAME, "
        "--init-from NAME"
    )
    return 0


def configure_export(p: argparse.ArgumentParser) -> None:
    """The options of ``gtn export``."""
    p.add_argument("run", metavar="RUN", help="a GTN run folder or checkpoint")
    p.add_argument("--out", required=True, help="the file to write (fp16 weights, no optimiser)")
    p.add_argument("--note", default="", help="recorded in the file (e.g. the training command)")
    p.add_argument("--precision", default="fp16", choices=["fp16", "int8"],
                   help="fp16, or int8 (a scale per row) for the large tensors")  # fmt: skip
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")


def run_export(args: argparse.Namespace) -> int:
    """Write a run's teacher as a small file that teaches and seeds --init-from."""
    from gtn.pretrained import export_teacher, sha256

    out = check_output_path(args.out, force=args.force)
    _, state = load_state(args.run)
    path = export_teacher(state, out, note=args.note, precision=args.precision)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, step {state['step']}, "
          f"sha256 {sha256(path)})")  # fmt: skip
    return 0


#: ``metaqnn gtn WHAT``: (configure, run, help) per subcommand.
SUBCOMMANDS = {
    "list": (configure_list, run_list, "the pretrained teachers shipped with the package"),
    "export": (
        configure_export,
        run_export,
        "a run's teacher as a small fp16 file (teaches; cannot be resumed)",
    ),
    "train": (configure_train, run_train, "meta-train a GTN teacher (resumable)"),
    "sample": (configure_sample, run_sample, "write a PNG grid of generated samples per class"),
    "eval": (configure_eval, run_eval, "an architecture trained by GTN vs real data"),
}


def configure_gtn(p: argparse.ArgumentParser) -> None:
    """``metaqnn gtn``: one parser per subcommand."""
    sub = p.add_subparsers(dest="gtn_command", required=True, metavar="WHAT", help="one of:")
    for name, (configure, _, help_text) in SUBCOMMANDS.items():
        configure(sub.add_parser(name, help=help_text, description=help_text,
                                 formatter_class=DefaultsHelpFormatter))  # fmt: skip


def run_gtn(args: argparse.Namespace) -> int:
    """Run the chosen ``metaqnn gtn`` subcommand."""
    return SUBCOMMANDS[args.gtn_command][1](args)
