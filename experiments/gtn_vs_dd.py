"""GTN against Dataset Distillation and real data: accuracy against inner steps on MNIST (DD
with random init: 79.5 +- 8.1 % as the reference).

The GTN teacher (full curriculum, the paper's learner) is reused, resumed or meta-trained
through ``ctx.gtn``; the DD teacher (learned pixels, ``gtn.distill``, the DD paper's default
shape: 10 steps x 3 epochs x 1 image per class, a random initialisation of the learner at every
outer step) is meta-trained on the same learner the same way. Both then teach fresh learners
(several seeds, apart from meta-training's) and the learners are scored after k inner steps:
``k`` below a teacher's inner steps means its first k batches and learned learning rates (see
:mod:`experiments.common.steps_curve`). Real data trains the same learner with GTN's batch size and
with DD's batch size, at the learning rate of a grid that is best on validation data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envs.layers import Architecture
from experiments.common.checks import at_least
from experiments.common.steps_curve import (
    CurvePoint,
    check_steps,
    curve_table,
    plot_curves,
    real_curve,
    subset,
    summarize,
    teacher_curve,
    timed,
    timed_points,
    tuned,
)
from experiments.common.teachers import with_config
from experiments.harness import REPO_ROOT, Context, Outcome, main
from gtn.meta import load_meta_checkpoint, teacher_from_checkpoint
from metaqnn.core.data import load_dataset
from metaqnn.core.nets import NetConfig
from metaqnn.errors import ConfigError
from metaqnn.markdown import markdown_table
from metaqnn.teacher.run import TeacherRun
from metaqnn.teacher.shapes import fixed_learner_factory

NAME = "gtn_vs_dd"

#: DD (Wang et al. 2018), MNIST, random initialisation, 10 steps x 3 epochs x 1 image per
#: class: test accuracy mean and std (RESEARCH.md).
DD_PAPER_RANDOM_INIT = (0.795, 0.081)
#: DD, MNIST, one fixed initialisation (RESEARCH.md).
DD_PAPER_FIXED_INIT = 0.938
#: GTN paper, MNIST, 32 inner steps (RESEARCH.md: about 98.9 %, second-hand).
GTN_PAPER_32_STEPS = 0.989


@dataclass(frozen=True)
class Config:
    """The two teachers, their budgets and the evaluation."""

    dataset: str = "mnist"
    """Dataset."""
    val_size: int = 5000
    """Training images held out for validation (the teachers' split; picks real-data lrs)."""
    gtn_run: str = "runs/gtn/mnist-paper-target"
    """GTN run folder (relative to the repository root); empty: under the scratch folder."""
    gtn_outer_steps: int = 220
    """Outer steps of the GTN (reused when its run folder has them)."""
    gtn_teacher: TeacherRun = field(default_factory=lambda: TeacherRun(learner="paper"))
    """``TeacherRun`` fields of the GTN when it must be trained (a TOML table); its dataset,
    val size and seed are this config's."""
    dd_run: str = ""
    """DD run folder (relative to the repository root); empty: under the scratch folder."""
    dd_outer_steps: int = 150
    """Outer steps of DD meta-training."""
    dd_outer_lr: float = 0.01
    """DD's outer Adam learning rate (cosine-decayed; DD's code uses Adam 0.01)."""
    dd_steps: int = 10
    """DD: distinct distilled batches."""
    dd_epochs: int = 3
    """DD: passes over them (inner steps = steps x epochs)."""
    dd_images_per_class: int = 1
    """DD: images of each class per batch."""
    dd_meta_batch: int = 128
    """DD: real examples scoring the learner per outer step."""
    steps: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    """Inner step counts at which learners are scored."""
    seeds: int = 5
    """Fresh learners (initialisations) per point."""
    eval_seed: int = 1000
    """First evaluation seed (apart from meta-training's learner seeds)."""
    test_size: int = 1000
    """Test images scored per point (the first ones; 0: all)."""
    val_eval_size: int = 500
    """Validation images that pick the real-data learning rate (0: all)."""
    real_lrs: tuple[float, ...] = (0.001, 0.003, 0.01)
    """Adam learning rates of the real-data baselines."""
    real_optimizer: str = "adam"
    """Real-data optimiser (``experiments.common.steps_curve.OPTIMIZERS``)."""
    seed: int = 0
    """Seed of the split and of meta-training."""

    def __post_init__(self) -> None:
        check_steps(self.steps)
        at_least(self, ("gtn_outer_steps", "dd_outer_steps", "dd_steps", "dd_epochs", "seeds"))
        at_least(self, ("dd_images_per_class", "dd_meta_batch"))


def _folder(path: str, ctx: Context, default: str) -> Path:
    return REPO_ROOT / path if path else ctx.work / default


def gtn_settings(config: Config) -> TeacherRun:
    """The settings of the GTN teacher."""
    return with_config(config.gtn_teacher, "gtn_teacher", dataset=config.dataset,
                       val_size=config.val_size, seed=config.seed)  # fmt: skip


def dd_settings(config: Config, learner: str) -> TeacherRun:
    """The settings of the DD teacher (``method="dd"``) on ``learner``."""
    return TeacherRun(
        method="dd",
        dataset=config.dataset,
        val_size=config.val_size,
        seed=config.seed,
        learner=learner,
        dd_steps=config.dd_steps,
        dd_epochs=config.dd_epochs,
        dd_images_per_class=config.dd_images_per_class,
        outer_lr=config.dd_outer_lr,
        meta_batch=config.dd_meta_batch,
        checkpoint_every=25,
    )


def _check(state: dict[str, Any], run_dir: Path, dataset: str, learner: str | None) -> None:
    extra = state["extra"]
    if extra["dataset"] != dataset or (learner is not None and extra["learner"] != learner):
        raise ConfigError(
            f"{run_dir} teaches {extra['learner']} on {extra['dataset']}; this "
            f"experiment needs {learner or 'a learner'} on {dataset}"
        )
    if extra["learner"] == "space":
        raise ConfigError(f"{run_dir} was meta-trained across a space; one learner is needed")


def _meta_row(label: str, state: dict[str, Any], shape: str) -> list[str]:
    history = state["history"]
    tail = history[-20:]
    acc = 100 * sum(r["accuracy"] for r in tail) / max(len(tail), 1)
    meta = state["meta_config"]
    return [
        label,
        shape,
        str(state["step"]),
        f"{meta['outer_lr']:g}",
        str(sum(r["skipped"] for r in history)),
        f"{acc:.1f}",
    ]


def run(config: Config, ctx: Context) -> Outcome:
    """Meta-train (or reuse) GTN and DD, score both and real data against inner steps."""
    data = load_dataset(
        config.dataset,
        root=ctx.data_root,
        val_size=config.val_size,
        seed=config.seed,
        device=ctx.device,
    )
    gtn_dir = _folder(config.gtn_run, ctx, "gtn")
    ctx.gtn(gtn_dir, gtn_settings(config), config.gtn_outer_steps)
    gtn_state = load_meta_checkpoint(gtn_dir, kind="gtn-meta")
    _check(gtn_state, gtn_dir, data.name, None)
    learner = gtn_state["extra"]["learner"]
    dd_dir = _folder(config.dd_run, ctx, "dd")
    dd_time = ctx.memo(
        "meta_time/dd",
        lambda: timed(lambda: ctx.gtn(dd_dir, dd_settings(config, learner), config.dd_outer_steps)),
    )
    dd_state = load_meta_checkpoint(dd_dir, kind="dd-meta")
    _check(dd_state, dd_dir, data.name, learner)
    if dd_state["step"] < config.dd_outer_steps:  # memo from an interrupted earlier call
        ctx.gtn(dd_dir, dd_settings(config, learner), config.dd_outer_steps)
        dd_state = load_meta_checkpoint(dd_dir, kind="dd-meta")

    arch = Architecture.parse(learner)
    net = NetConfig(**gtn_state["extra"]["net_config"])
    factory = fixed_learner_factory(arch, data, net, ctx.device)
    test = subset(data.test, config.test_size)
    val = subset(data.val, config.val_eval_size)
    seeds = [config.eval_seed + i for i in range(config.seeds)]
    gtn = teacher_from_checkpoint(gtn_state, ctx.device)
    dd = teacher_from_checkpoint(dd_state, ctx.device)
    gtn_label = f"GTN ({gtn_state['step']} outer steps)"
    dd_label = f"DD ({dd_state['step']} outer steps)"
    units: dict[str, dict[str, Any]] = {}
    units[gtn_label] = ctx.memo(
        "curve/gtn",
        lambda: timed_points(
            lambda: teacher_curve(gtn, factory, test, config.steps, seeds, method=gtn_label)
        ),
    )
    units[dd_label] = ctx.memo(
        "curve/dd",
        lambda: timed_points(
            lambda: teacher_curve(dd, factory, test, config.steps, seeds, method=dd_label)
        ),
    )
    real_labels = []
    for batch in sorted({gtn.config.inner_batch, dd.config.inner_batch}, reverse=True):
        label = f"real b{batch}"
        real_labels.append(label)
        # also the end point of the teacher(s) with this batch size (DD's 30 steps)
        ends = {t.config.inner_steps for t in (gtn, dd) if t.config.inner_batch == batch}
        extra = sorted(ends - set(config.steps))
        ks = check_steps([*config.steps, *extra])
        key = f"curve/real-b{batch}" + "".join(f"+{k}" for k in extra)
        units[label] = ctx.memo(
            key,
            lambda b=batch, m=label, ks=ks: timed_points(
                lambda: real_curve(
                    factory,
                    data.train,
                    val,
                    test,
                    ks,
                    seeds,
                    config.real_lrs,
                    batch_size=b,
                    optimizer=config.real_optimizer,
                    method=m,
                )
            ),
        )
    points = {m: [CurvePoint(**r) for r in u["rows"]] for m, u in units.items()}
    reported = points[gtn_label] + points[dd_label]
    for label in real_labels:
        reported += tuned(points[label], label)
    summaries = summarize(reported)
    methods = [gtn_label, dd_label, *real_labels]
    dd_ref = f"{100 * DD_PAPER_RANDOM_INIT[0]:.1f} ± {100 * DD_PAPER_RANDOM_INIT[1]:.1f} %"
    figure = plot_curves(
        summaries,
        methods,
        ctx.figure("gtn_vs_dd.png"),
        title=f"{data.name}: GTN vs DD vs real data, {arch}",
        references=[(f"DD paper, random init ({dd_ref})", *DD_PAPER_RANDOM_INIT)]
        if data.name == "mnist"
        else [],
    )
    meta_rows = [
        _meta_row("GTN", gtn_state, f"{gtn.config.inner_steps} steps x {gtn.config.inner_batch}"),
        _meta_row(
            "DD",
            dd_state,
            f"{dd.config.steps} steps x {dd.config.epochs} epochs x {dd.config.inner_batch}",
        ),
    ]
    return _outcome(
        config,
        data.name,
        arch,
        summaries,
        methods,
        meta_rows,
        figure,
        units,
        dd_time,
        gtn.config.inner_steps,
        dd.config.inner_steps,
    )


def _outcome(
    config,
    dataset,
    arch,
    summaries,
    methods,
    meta_rows,
    figure,
    units,
    dd_time,
    gtn_steps,
    dd_steps,
) -> Outcome:
    gtn_label, dd_label = methods[0], methods[1]
    by = {(s.method, s.steps): s for s in summaries}
    gtn_end, dd_end = by[(gtn_label, gtn_steps)], by[(dd_label, dd_steps)]
    real_at = lambda label, k: by.get((label, k))  # noqa: E731
    pct = lambda s: f"{100 * s.mean:.2f} ± {100 * s.std:.2f} %" if s else ""  # noqa: E731
    test_note = f"the first {config.test_size}" if config.test_size else "all"
    lines = [
        f"Dataset {dataset}; learner `{arch}` (weight norm, batch-statistics batch norm, "
        f"LeakyReLU, Kaiming init) for GTN, DD and real data alike. Evaluation: "
        f"{config.seeds} fresh initialisations (seeds {config.eval_seed}..."
        f"{config.eval_seed + config.seeds - 1}), accuracy on {test_note} test images "
        f"(mean ± std over seeds). Real data: {config.real_optimizer}, learning rate per step "
        f"count picked from {list(config.real_lrs)} by mean accuracy on "
        f"{config.val_eval_size or 'all'} validation images.",
        "",
        "## Meta-training",
        "",
        markdown_table(
            [
                "teacher",
                "shape",
                "outer steps",
                "outer lr",
                "skipped",
                "meta-batch acc, last 20 (%)",
            ],
            meta_rows,
        ),
        "",
        f"DD meta-training in this call: {dd_time['cpu_s']:.1f} CPU s, {dd_time['wall_s']:.1f} s "
        "wall (0 when the run folder was already complete).",
        "",
        "## Accuracy against inner steps",
        "",
        curve_table(summaries, methods),
        "",
        f"![accuracy against inner steps]({figure.name})",
        "",
        "## Against the reference",
        "",
        markdown_table(
            ["", "ours", "reference"],
            [
                [
                    f"DD, random init, {dd_steps} steps",
                    pct(dd_end),
                    f"{100 * DD_PAPER_RANDOM_INIT[0]:.1f} ± {100 * DD_PAPER_RANDOM_INIT[1]:.1f} % "
                    "(DD paper, LeNet)",
                ],
                ["DD, fixed init", "", f"{100 * DD_PAPER_FIXED_INIT:.1f} % (DD paper)"],
                [
                    f"GTN, {gtn_steps} steps",
                    pct(gtn_end),
                    f"about {100 * GTN_PAPER_32_STEPS:.1f} % (GTN paper, 2,000 outer steps)",
                ],
                *[
                    [f"{label}, {k} steps", pct(real_at(label, k)), ""]
                    for label in methods[2:]
                    for k in sorted({dd_steps, gtn_steps})
                    if real_at(label, k)
                ],
            ],
        ),
        "",
        "Unit costs (this machine, measured when each unit was computed): "
        + "; ".join(f"{m}: {u['cpu_s']:.1f} CPU s" for m, u in units.items())
        + ".",
    ]
    summary = {
        "gtn_end": gtn_end.mean,
        "gtn_end_std": gtn_end.std,
        "dd_end": dd_end.mean,
        "dd_end_std": dd_end.std,
        "gtn_steps": gtn_steps,
        "dd_steps": dd_steps,
        "dd_meta_cpu_s": dd_time["cpu_s"],
    } | {
        f"{label}_{gtn_steps}": getattr(real_at(label, gtn_steps), "mean", None)
        for label in methods[2:]
    }
    rows = [r for u in units.values() for r in u["rows"]]
    return Outcome("\n".join(lines), summary, rows)


if __name__ == "__main__":
    main(NAME, Config, run, doc=__doc__)
