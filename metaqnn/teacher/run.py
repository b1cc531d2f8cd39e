"""Teacher training as a typed call: :class:`TeacherRun` (every setting of ``metaqnn gtn
train``) and :func:`train_teacher`, which the command line, the demo, the design command and
the experiments all call.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from envs.layers import Architecture
from envs.space import SearchSpace, get_space
from gtn.distill import DistilledData
from gtn.inner_loop import INITIAL_LR, step_rule
from gtn.meta import (
    CHECKPOINT_NAME,
    LearnerFactory,
    MetaConfig,
    MetaTrainer,
    TeacherDivergedError,
    checkpoint_file,
    load_meta_checkpoint,
    teacher_from_checkpoint,
)
from gtn.pretrained import is_exported
from gtn.teacher import GTNTeacher, SyntheticTeacher
from metaqnn.core.data import Dataset, load_dataset
from metaqnn.core.nets import NetConfig
from metaqnn.core.training import evaluate
from metaqnn.errors import CheckpointError, ConfigError
from metaqnn.markdown import markdown_table
from metaqnn.runinfo import run_metadata
from metaqnn.runlock import RunLock
from metaqnn.teacher.shapes import (
    GTN_LEARNER,
    PAPER_LEARNERS,
    distill_config,
    fixed_learner_factory,
    space_learner_factory,
    teacher_config,
)

CHECKPOINT = CHECKPOINT_NAME


@dataclass(frozen=True)
class TeacherRun:
    """One meta-training run of a teacher (the options of ``metaqnn gtn train``)."""

    dataset: str = "digits"
    """Dataset name (ignored with ``resume``: the run's own)."""
    data_root: str | None = None
    """Data root (None: ``$METAQNN_DATA`` or the default)."""
    download: bool = False
    """Let torchvision download missing files."""
    val_size: int | None = None
    """Training images held out for validation (None: the dataset's default)."""
    device: str = "cpu"
    """Torch device."""
    seed: int = 0
    """Seed of the split, the teacher's initialisation and the learners."""
    learner: str = "space"
    """``space`` (a fresh architecture every outer step), ``paper``, or an architecture."""
    space: str | None = None
    """Search-space preset of ``space`` learners (None: the dataset's)."""
    width_divisor: int = 1
    """Divide the space's conv filters and FC widths by this."""
    method: str = "gtn"
    """``gtn`` (a generator) or ``dd`` (Dataset Distillation: learned pixels)."""
    dd_images_per_class: int = 1
    """DD: images per class per batch."""
    dd_steps: int = 10
    """DD: distinct distilled batches."""
    dd_epochs: int = 3
    """DD: passes over them."""
    curriculum: str = "full"
    """``none``, ``all-shuffled``, ``shuffled-batch`` or ``full``."""
    inner_steps: int = 32
    """Inner (learner) steps per teaching."""
    inner_batch: int = 128
    """Synthetic images per inner step."""
    soft_labels: bool = False
    """Learned soft labels instead of one-hot ones."""
    inner_rule: str = "sgd"
    """Inner step rule: ``sgd`` (the paper's) or ``relative``."""
    init_lr: float | None = None
    """Initial inner learning rate (None: the rule's default)."""
    generator_hidden: int = 1024
    """Generator hidden width."""
    noise_dim: int = 128
    """Generator noise dimension."""
    outer_steps: int | None = None
    """Outer steps (None: 2000, or the resumed run's); with ``resume``, extends a run."""
    outer_lr: float = 0.02
    """Outer (Adam) learning rate."""
    meta_batch: int = 128
    """Real images per meta-loss."""
    intermediate_every: int = 0
    """Add the meta-loss every this many inner steps too (0: only at the end)."""
    truncate: int | None = None
    """Backpropagate through the last N inner steps only."""
    checkpoint_inner: bool = False
    """Gradient checkpointing of the inner steps."""
    grad_clip: float = 1.0
    """Clip of the meta-gradient's norm."""
    max_minutes: float | None = None
    """Stop (and save) after this many minutes."""
    checkpoint_every: int = 50
    """Outer steps between checkpoints."""
    logdir: str | None = None
    """Run folder (None: ``runs/gtn/<dataset>__<curriculum>__seed<seed>__<time>``)."""
    resume: str | None = None
    """A run folder or checkpoint to continue."""
    init_from: str | None = None
    """Start from another run's teacher with a fresh outer optimiser."""
    warm_start: int = 0
    """Adam steps fitting the generator's batches to real images first (0: off)."""
    warm_start_lr: float = 1e-3
    """Warm start learning rate."""
    warm_start_select: str = "random"
    """Which real images the warm start fits: ``random`` or ``kmeans``."""
    meta_train: str = "all"
    """What the outer loop updates: ``all`` or ``schedule``."""
    eval_archs: int = 10
    """Sampled architectures scored at the end."""
    eval_paper_learner: bool = True
    """Also score the dataset's paper learner at the end (when it has one)."""
    progress: bool = True
    """Show progress bars."""


@dataclass(frozen=True)
class TeacherResult:
    """What :func:`train_teacher` did."""

    run_dir: Path
    """The run folder (``checkpoint.pt`` in it)."""
    teacher: SyntheticTeacher
    """The trained teacher."""
    step: int
    """Outer steps done."""
    outer_steps: int
    """Outer steps planned."""
    wall_s: float
    """Seconds of this call's meta-training."""
    meta_batch_accuracy: float
    """Mean learner accuracy on real meta-batches over the last 20 steps."""
    skipped: int
    """Outer steps skipped (non-finite meta-gradients)."""
    summary: list[list[str]]
    """Rows (kind, test accuracy, architecture) of the end-of-run evaluation."""


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"bad device {name!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}: CUDA is not available on this machine")
    return device


def _load(
    run: TeacherRun, name: str, val_size: int | None, seed: int, device: torch.device
) -> Dataset:
    return load_dataset(name, root=run.data_root, val_size=val_size, device=device, seed=seed,
                        download=run.download)  # fmt: skip


def load_state(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """A checkpoint path or run folder -> (checkpoint path, its dict)."""
    try:
        ckpt = checkpoint_file(path)
        return ckpt, load_meta_checkpoint(ckpt)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None


def space_for(extra: dict[str, Any]) -> SearchSpace:
    """The (width-scaled) search space a run's ``extra`` names."""
    try:
        return get_space(extra["space"]).scale_widths(int(extra.get("width_divisor", 1)))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def learner_factory(extra: dict[str, Any], data: Dataset, device: torch.device) -> LearnerFactory:
    """The learners a run's ``extra`` says it meta-trains on."""
    net = NetConfig(**extra["net_config"])
    if extra["learner"] == "space":
        return space_learner_factory(space_for(extra), data, net, device)
    return fixed_learner_factory(Architecture.parse(extra["learner"]), data, net, device)


def test_accuracy(model: torch.nn.Module, data: Dataset) -> float:
    """Accuracy of ``model`` on the test split."""
    return evaluate(model, data.test).accuracy


def summary_rows(
    teacher: GTNTeacher, extra: dict[str, Any], data, device, count: int
) -> list[list[str]]:
    """Test accuracy after the teacher's steps for the paper learner and ``count`` sampled
    architectures (seeds apart from meta-training's)."""
    net = NetConfig(**extra["net_config"])
    archs = []
    if data.name in PAPER_LEARNERS:
        archs.append(("paper learner", Architecture.parse(PAPER_LEARNERS[data.name])))
    space = space_for(extra)
    rng = np.random.default_rng(10_000_019)
    archs += [("sampled", space.sample(rng)) for _ in range(count)]
    rows = []
    for kind, arch in archs:
        learner = fixed_learner_factory(arch, data, net, device)(1)
        teacher.teach(learner, seed=1)
        rows.append([kind, f"{test_accuracy(learner, data):.4f}", str(arch)])
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
    ckpt, state = load_state(path)
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


def _warm_start(teacher: GTNTeacher, data: Dataset, run: TeacherRun) -> dict[str, Any]:
    """Fit the teacher to paired real images (:mod:`gtn.warmstart`); what to record."""
    from gtn.warmstart import WarmStartConfig, fit_to_real

    config = WarmStartConfig(steps=run.warm_start, lr=run.warm_start_lr, seed=run.seed,
                             select=run.warm_start_select)  # fmt: skip
    start = time.perf_counter()
    losses = fit_to_real(teacher, data.train.x, data.train.y, config, progress=run.progress)
    seconds = time.perf_counter() - start
    tail = float(np.mean(losses[-20:]))
    print(f"warm start: {config.steps} fit steps in {seconds:.0f} s, mean squared error "
          f"{losses[0]:.3f} -> {tail:.3f} (last 20)")  # fmt: skip
    return {**dataclasses.asdict(config), "first_mse": losses[0], "final_mse": tail,
            "seconds": round(seconds, 1)}  # fmt: skip


def train_teacher(run: TeacherRun) -> TeacherResult:
    """Meta-train (or resume) a GTN or Dataset Distillation teacher as ``run`` says.

    The run folder holds ``checkpoint.pt`` (resumable: pass it as ``run.resume``), its
    ``config.json`` and TensorBoard events.

    Raises:
        ConfigError: For settings that do not fit together or are out of range.
        CheckpointError: For a ``resume`` or ``init_from`` that is not a teacher checkpoint.
    """
    device = _device(run.device)
    if run.warm_start and (run.resume or run.method != "gtn"):
        raise ConfigError(
            f"--warm-start {run.warm_start} fits a new GTN teacher (or one from --init-from) "
            "before meta-training; it cannot be combined with --resume or --method dd"
        )
    if run.resume:
        ckpt, state = load_state(run.resume)
        if is_exported(state):
            raise ConfigError(f"--resume {run.resume}: an exported teacher (fp16 weights, no "
                              "optimiser state) cannot be resumed; start a new run with "
                              f"--init-from {run.resume}")  # fmt: skip
        extra = state["extra"]
        data = _load(run, extra["dataset"], extra["val_size"], extra["seed"], device)
        teacher = teacher_from_checkpoint(state, device)
        meta = MetaConfig(**state["meta_config"])
        if run.outer_steps is not None:
            meta = dataclasses.replace(meta, outer_steps=run.outer_steps)
        run_dir = ckpt.parent
    else:
        if run.logdir and checkpoint_file(run.logdir).is_file():
            raise ConfigError(f"{run.logdir} already holds a teacher: resume it with --resume "
                              f"{run.logdir}, or pick another --logdir")  # fmt: skip
        data = _load(run, run.dataset, run.val_size, run.seed, device)
        learner = run.learner
        if learner == "paper":
            if data.name not in PAPER_LEARNERS:
                raise ConfigError(f"no paper learner for {data.name}; pass an architecture")
            learner = PAPER_LEARNERS[data.name]
        elif learner != "space":
            learner = str(Architecture.parse(learner))
        extra = {
            "dataset": data.name, "val_size": len(data.val), "seed": run.seed, "learner": learner,
            "space": run.space or data.spec.preset, "width_divisor": run.width_divisor,
            "net_config": dataclasses.asdict(NetConfig(**_gtn_net())),
        }  # fmt: skip
        try:
            if run.method == "dd":
                config = distill_config(
                    data, images_per_class=run.dd_images_per_class, steps=run.dd_steps,
                    epochs=run.dd_epochs, seed=run.seed,
                )  # fmt: skip
                teacher = DistilledData(config).to(device)
            else:
                step_rule(run.inner_rule)  # a bad name is a one-line error naming it
                config = teacher_config(
                    data, curriculum=run.curriculum, inner_steps=run.inner_steps,
                    inner_batch=run.inner_batch, soft_labels=run.soft_labels, seed=run.seed,
                    generator_hidden=run.generator_hidden, generator_noise_dim=run.noise_dim,
                    inner_rule=run.inner_rule,
                    init_lr=run.init_lr or INITIAL_LR[run.inner_rule],
                )  # fmt: skip
                teacher = GTNTeacher(config).to(device)
            if run.init_from:
                changed = _init_from(teacher, run.init_from, data.name,
                                     refit=bool(run.warm_start))  # fmt: skip
                extra["init_from"] = str(run.init_from)
                if changed:
                    extra["init_from_changed"] = changed
            if run.warm_start:
                extra["warm_start"] = _warm_start(teacher, data, run)
            meta = MetaConfig(
                outer_steps=run.outer_steps or 2000, outer_lr=run.outer_lr,
                meta_batch=run.meta_batch,
                intermediate_every=run.intermediate_every, truncate=run.truncate,
                checkpoint=run.checkpoint_inner, grad_clip=run.grad_clip, seed=run.seed,
                checkpoint_every=run.checkpoint_every, train=run.meta_train,
            )  # fmt: skip
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        label = "dd" if run.method == "dd" else run.curriculum
        run_dir = Path(run.logdir or f"runs/gtn/{data.name}__{label}__seed{run.seed}__{stamp}")
        state = None
    with RunLock(run_dir):
        return _meta_train(run, run_dir, teacher, data, extra, meta, state, device)


def _meta_train(run: TeacherRun, run_dir: Path, teacher: SyntheticTeacher, data: Dataset,
                extra: dict[str, Any], meta: MetaConfig, state: dict[str, Any] | None,
                device: torch.device) -> TeacherResult:  # fmt: skip
    """The outer loop of :func:`train_teacher` (in a run folder this process owns)."""
    factory = learner_factory(extra, data, device)
    trainer = MetaTrainer(teacher, factory, data.train.x, data.train.y, meta, logdir=run_dir,
                          checkpoint_path=run_dir / CHECKPOINT, extra=extra)  # fmt: skip
    if state is not None:
        trainer.load_state(state)
    (run_dir / "config.json").write_text(json.dumps({
        "teacher": teacher.config.to_dict(), "meta": dataclasses.asdict(meta), "extra": extra,
        "run": run_metadata(device), "command": dataclasses.asdict(run),
    }, indent=2, default=str))  # fmt: skip
    print(f"GTN meta-training on {data.source} ({len(data.train)} train images), learner "
          f"{extra['learner']}, run folder {run_dir}")  # fmt: skip
    start = time.perf_counter()
    limit = None if run.max_minutes is None else 60 * run.max_minutes
    try:
        trainer.run(progress=run.progress, time_limit_s=limit)
    except TeacherDivergedError as exc:
        raise ConfigError(f"{run_dir}: {exc}") from None
    trainer.save(run_dir / CHECKPOINT)
    elapsed = time.perf_counter() - start
    recent = trainer.history[-20:]
    mean_acc = float(np.mean([r.accuracy for r in recent])) if recent else float("nan")
    skipped = sum(r.skipped for r in trainer.history)
    print(
        f"outer step {trainer.step}/{meta.outer_steps} in {elapsed:.0f} s; learner accuracy on "
        f"real meta-batches (last {len(recent)} steps) {mean_acc:.3f}; {skipped} steps skipped"
    )
    chance = 1.0 / data.spec.num_classes
    if recent and mean_acc < 2 * chance:
        print(f"warning: the teacher's learners reach {mean_acc:.3f} on real data, near chance "
              f"({chance:.2f}): rewards from it will not rank architectures. Train longer "
              "(--resume with more --outer-steps), or see the dataset presets of metaqnn design",
              flush=True)  # fmt: skip
    rows: list[list[str]] = []
    if run.eval_archs or (run.eval_paper_learner and data.name in PAPER_LEARNERS):
        rows = summary_rows(trainer.teacher, extra, data, device, run.eval_archs)
        print(f"test accuracy after {teacher.config.inner_steps} synthetic steps:")
        print(markdown_table(["learner", "test acc", "architecture"], rows))
    return TeacherResult(
        run_dir=run_dir, teacher=trainer.teacher, step=trainer.step,
        outer_steps=meta.outer_steps, wall_s=elapsed, meta_batch_accuracy=mean_acc,
        skipped=skipped, summary=rows,
    )  # fmt: skip


def _gtn_net() -> dict[str, Any]:
    return dataclasses.asdict(GTN_LEARNER)
