"""Curriculum ablation (GTN paper): none, all-shuffled, shuffled-batch, full; accuracy against
inner steps, beside real data at a tuned learning rate.

Four GTN teachers that differ only in their curriculum (``gtn.curriculum.CURRICULA``) are
meta-trained with the same budget (same learner, generator, inner steps, outer steps, outer
learning rate, seed) through ``ctx.gtn`` (``train_teacher``; a killed run resumes). Each
then teaches fresh learners (several seeds, apart from meta-training's) for k inner steps, k in
``steps``; ``k`` below the teacher's inner steps means its first k batches and learned learning
rates (see :mod:`experiments.common.steps_curve`). Real data trains the same learner with the same
batch size for the same steps, at the learning rate of a grid that is best on validation data.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from envs.layers import Architecture
from experiments.common.checks import at_least, known_choices
from experiments.common.steps_curve import (
    CurvePoint,
    check_steps,
    curve_table,
    plot_curves,
    real_curve,
    summarize,
    teacher_curve,
    tuned,
)
from experiments.harness import REPO_ROOT, Context, Outcome, main
from gtn.curriculum import CURRICULA
from gtn.meta import load_meta_checkpoint, teacher_from_checkpoint
from metaqnn.core.data import load_dataset
from metaqnn.core.nets import NetConfig
from metaqnn.errors import ConfigError
from metaqnn.markdown import markdown_table
from metaqnn.teacher.run import TeacherRun
from metaqnn.teacher.shapes import fixed_learner_factory

NAME = "curricula"

#: The GTN paper's order of the curricula, worst to best (its finding: full is best).
PAPER_ORDER = ("none", "all-shuffled", "shuffled-batch", "full")
#: The paper's MNIST learner after 32 GTN steps (RESEARCH.md: about 98.9 %, second-hand).
PAPER_MNIST_32_STEPS = 0.989


@dataclass(frozen=True)
class Config:
    """The ablation's shared budget and its evaluation."""

    dataset: str = "digits"
    """Dataset (``digits``: 8x8 images, cheap enough for four teachers on this machine)."""
    val_size: int = 300
    """Training images held out for validation (picks the real-data learning rate)."""
    learner: str = "[C(32,3,1), P(2,2), FC(64), SM(10)]"
    """The one learner every teacher is meta-trained on and evaluated with."""
    curricula: tuple[str, ...] = PAPER_ORDER
    """Curricula compared (names from ``gtn.curriculum.CURRICULA``)."""
    inner_steps: int = 32
    """Inner steps of meta-training (the paper's MNIST 32)."""
    inner_batch: int = 128
    """Synthetic examples per inner step (the paper's 128; 32 x 128 = the 4,096 of the
    all-shuffled pool, and 32 = the shuffled-batch curriculum's batches)."""
    generator_hidden: int = 256
    """Width of the generator's first linear layer (the paper's 1024)."""
    noise_dim: int = 32
    """Generator noise dimension (the paper's 128)."""
    outer_steps: int = 150
    """Outer (meta) steps of every teacher (the paper's 2,000)."""
    outer_lr: float = 0.02
    """Outer Adam learning rate, cosine-decayed (the paper's MNIST 0.02)."""
    meta_batch: int = 128
    """Real examples scoring the learner per outer step."""
    steps: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    """Inner step counts at which learners are scored."""
    seeds: int = 5
    """Fresh learners (initialisations) per point."""
    eval_seed: int = 1000
    """First evaluation seed (apart from meta-training's learner seeds)."""
    real_lrs: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03)
    """Adam learning rates of the real-data baseline (the best on validation is reported)."""
    real_optimizer: str = "adam"
    """Real-data optimiser (``experiments.common.steps_curve.OPTIMIZERS``)."""
    teacher_dir: str = ""
    """Folder of the teachers' run folders, one per curriculum (relative to the repository
    root); empty: the scratch folder."""
    seed: int = 0
    """Seed of the split, the teachers' initialisation and meta-training."""

    def __post_init__(self) -> None:
        known_choices("curricula", self.curricula, CURRICULA)
        check_steps(self.steps)
        at_least(self, ("inner_steps", "inner_batch", "outer_steps", "seeds", "meta_batch"))


def teacher_settings(config: Config, curriculum: str) -> TeacherRun:
    """The settings of the teacher with ``curriculum`` (all else shared)."""
    return TeacherRun(
        dataset=config.dataset,
        val_size=config.val_size,
        learner=config.learner,
        curriculum=curriculum,
        inner_steps=config.inner_steps,
        inner_batch=config.inner_batch,
        generator_hidden=config.generator_hidden,
        noise_dim=config.noise_dim,
        outer_lr=config.outer_lr,
        meta_batch=config.meta_batch,
        seed=config.seed,
        checkpoint_every=25,
    )


def _teacher_dir(config: Config, ctx: Context) -> Path:
    return REPO_ROOT / config.teacher_dir if config.teacher_dir else ctx.work / "teachers"


def _label(curriculum: str) -> str:
    return f"GTN {curriculum}"


def run(config: Config, ctx: Context) -> Outcome:
    """Meta-train the four teachers, score them against inner steps, write table and figure."""
    arch = Architecture.parse(config.learner)
    data = load_dataset(
        config.dataset,
        root=ctx.data_root,
        val_size=config.val_size,
        seed=config.seed,
        device=ctx.device,
    )
    seeds = [config.eval_seed + i for i in range(config.seeds)]
    points: list[CurvePoint] = []
    meta_rows, timing = [], {}
    for curriculum in config.curricula:
        run_dir = _teacher_dir(config, ctx) / curriculum
        start, cpu = time.perf_counter(), time.process_time()
        ctx.gtn(run_dir, teacher_settings(config, curriculum), config.outer_steps)
        state = load_meta_checkpoint(run_dir)
        extra = state["extra"]
        if extra["dataset"] != data.name or extra["learner"] != str(arch):
            raise ConfigError(
                f"{run_dir} teaches {extra['learner']} on {extra['dataset']}, "
                f"this config wants {arch} on {data.name}"
            )
        if state["teacher_config"]["curriculum"] != curriculum:
            raise ConfigError(
                f"{run_dir} holds curriculum {state['teacher_config']['curriculum']!r}"
                f", expected {curriculum!r}"
            )
        # Meta-training time of this call (0 when the run folder was already complete).
        timing[curriculum] = ctx.memo(
            f"meta_time/{curriculum}",
            lambda s=start, c=cpu: {
                "wall_s": time.perf_counter() - s,
                "cpu_s": time.process_time() - c,
            },
        )
        history = state["history"]
        tail = history[-20:]
        meta_rows.append(
            [
                curriculum,
                str(state["step"]),
                str(sum(r["skipped"] for r in history)),
                f"{100 * sum(r['accuracy'] for r in tail) / max(len(tail), 1):.1f}",
                f"{timing[curriculum]['cpu_s']:.0f}",
            ]
        )
        teacher = teacher_from_checkpoint(state, ctx.device)
        conv_channels = state["teacher_config"]["generator"]["conv_channels"]
        factory = fixed_learner_factory(arch, data, NetConfig(**extra["net_config"]), ctx.device)
        rows = ctx.memo(
            f"curve/{curriculum}",
            lambda t=teacher, f=factory, c=curriculum: [
                asdict(p)
                for p in teacher_curve(t, f, data.test, config.steps, seeds, method=_label(c))
            ],
        )
        points += [CurvePoint(**r) for r in rows]

    net = NetConfig(**extra["net_config"])
    factory = fixed_learner_factory(arch, data, net, ctx.device)
    real_label = f"real b{config.inner_batch}"
    real_rows = ctx.memo(
        "curve/real",
        lambda: [
            asdict(p)
            for p in real_curve(
                factory,
                data.train,
                data.val,
                data.test,
                config.steps,
                seeds,
                config.real_lrs,
                batch_size=config.inner_batch,
                optimizer=config.real_optimizer,
                method=real_label,
            )
        ],
    )
    real_points = [CurvePoint(**r) for r in real_rows]
    timing = {**timing, "_conv_channels": conv_channels}
    best_real = tuned(real_points, real_label)
    summaries = summarize(points + best_real)
    methods = [_label(c) for c in config.curricula] + [real_label]
    figure = plot_curves(
        summaries,
        methods,
        ctx.figure("curricula.png"),
        title=f"{data.name}: curricula, {config.outer_steps} outer steps each, {arch}",
    )
    return _outcome(
        config, data.name, arch, summaries, methods, meta_rows, figure, points, real_points, timing
    )


def _outcome(
    config, dataset, arch, summaries, methods, meta_rows, figure, points, real_points, timing
) -> Outcome:
    total = config.inner_steps
    generator_conv = "/".join(map(str, timing.pop("_conv_channels")))
    final = {s.method: s for s in summaries if s.steps == total}
    ranking = sorted(config.curricula, key=lambda c: final[_label(c)].mean)
    real = final.get(f"real b{config.inner_batch}")
    best = ranking[-1]
    lines = [
        f"Dataset {dataset}; learner `{arch}` (weight norm, batch-statistics batch norm, "
        f"LeakyReLU, Kaiming init); every teacher: generator noise {config.noise_dim}, hidden "
        f"{config.generator_hidden}, conv {generator_conv}, {config.inner_steps} inner steps of "
        f"{config.inner_batch}, {config.outer_steps} outer steps, outer Adam {config.outer_lr} "
        f"cosine, meta-batch {config.meta_batch}, seed {config.seed}. Evaluation: "
        f"{config.seeds} fresh initialisations (seeds {config.eval_seed}..."
        f"{config.eval_seed + config.seeds - 1}), test accuracy (mean ± std over seeds). "
        f"Real data: {config.real_optimizer}, batch {config.inner_batch}, learning rate per "
        f"step count picked from {list(config.real_lrs)} by mean validation accuracy.",
        "",
        "Scaling against the GTN paper (MNIST, the MNIST learner, generator noise 128 / hidden "
        f"1024, 2,000 outer steps): {dataset} instead of MNIST, the learner above, a smaller "
        f"generator, {config.outer_steps} outer steps per curriculum.",
        "",
        "## Accuracy against inner steps",
        "",
        curve_table(summaries, methods),
        "",
        f"![accuracy against inner steps]({figure.name})",
        "",
        "## Meta-training",
        "",
        markdown_table(
            [
                "curriculum",
                "outer steps",
                "skipped",
                "meta-batch acc, last 20 (%)",
                "CPU s (this call)",
            ],
            meta_rows,
        ),
        "",
        "## Against the reference",
        "",
        markdown_table(
            ["", "ours", "GTN paper"],
            [
                [
                    "order at the end point, worst to best",
                    " < ".join(ranking),
                    " < ".join(PAPER_ORDER),
                ],
                [
                    f"best curriculum after {total} steps",
                    f"{best}: {100 * final[_label(best)].mean:.2f} %",
                    "full",
                ],
                [f"real data, {total} steps", f"{100 * real.mean:.2f} %" if real else "", ""],
                [
                    "paper learner on MNIST, full, 32 steps",
                    "",
                    f"{100 * PAPER_MNIST_32_STEPS:.1f} %",
                ],
            ],
        ),
    ]
    summary = {f"{c}_{total}_steps": final[_label(c)].mean for c in config.curricula} | {
        "ranking": ranking,
        "real_end": real.mean if real else None,
        "meta_time": timing,
    }
    rows = [asdict(p) for p in points + real_points]
    return Outcome("\n".join(lines), summary, rows)


if __name__ == "__main__":
    main(NAME, Config, run, doc=__doc__)
