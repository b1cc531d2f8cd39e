"""How much does a warm-started GTN lose against the real images it imitates, and how much do
the median's figures move with the choice of those images? A GTN run's learned schedule teaches
the sampled architectures of ``gtn_space_table`` (same seeds) once with the generator's own
batches and once with each set of real training images a warm start would fit
(``gtn.warmstart.paired_targets``: same labels, same batch layout), for every selection and
seed asked for.

    python -m experiments real_curriculum --set teacher=runs/gtn/mnist-space-d16-warm-schedule-200 \
        --data-root ../shared/data --set 'select=["random", "kmeans"]' --set 'seeds=[0, 1, 2]' \
        --out experiments/results/real_curriculum_mnist

Accuracy is on the test split. Writes ``results.md`` (one row per curriculum: median,
quartiles, below 20 %, the architectures at the median) and ``results.json`` (every accuracy).
``--quick`` meta-trains a tiny digits teacher in the scratch folder and scores 3 architectures.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

from tqdm import tqdm

from experiments.common.architectures import ARCH_SEED, load_space_run
from experiments.common.checks import at_least, known_choices
from experiments.common.teachers import scored_teacher
from experiments.harness import Context, Outcome, main
from gtn.warmstart import SELECTIONS, paired_targets
from metaqnn.core.training import evaluate
from metaqnn.errors import ConfigError
from metaqnn.runinfo import run_metadata
from metaqnn.teacher.run import TeacherRun
from metaqnn.teacher.shapes import fixed_learner_factory

NAME = "real_curriculum"


@dataclass(frozen=True)
class Config:
    """The teacher, the architectures and the real curricula compared with its generator."""

    teacher: str = ""
    """A teacher run folder or checkpoint with a learned batch sequence (curriculum ``full`` or
    ``shuffled-batch``; relative to the repository root), scored as it is; empty: one
    meta-trained in the scratch folder with ``teacher_settings`` for
    ``teacher_outer_steps``."""
    teacher_settings: TeacherRun = field(default_factory=TeacherRun)
    """``TeacherRun`` fields of the scratch teacher (a TOML table)."""
    teacher_outer_steps: int = 1
    """Outer steps of the scratch teacher."""
    count: int = 30
    """Architectures sampled (seed :data:`~experiments.common.architectures.ARCH_SEED`)."""
    select: tuple[str, ...] = ("random",)
    """Selections of the real images (``gtn.warmstart.SELECTIONS``)."""
    seeds: tuple[int, ...] = (0,)
    """Selection seeds."""
    seed: int = 1
    """Initialisation seed of every learner."""

    def __post_init__(self) -> None:
        known_choices("select", self.select, SELECTIONS)
        at_least(self, ("count", "teacher_outer_steps"))


def run(config: Config, ctx: Context) -> Outcome:
    """Teach the architectures with the generator's batches and with each real curriculum."""
    start_all = time.perf_counter()
    run_dir = scored_teacher(ctx, config.teacher, config.teacher_settings,
                             config.teacher_outer_steps)  # fmt: skip
    device = ctx.device
    loaded = load_space_run(run_dir, config.count, data_root=ctx.data_root, device=device)
    state, data, teacher, net, archs = (loaded.state, loaded.data, loaded.teacher, loaded.net,
                                        loaded.archs)  # fmt: skip
    labels = getattr(teacher.curriculum, "labels", None)
    if labels is None or labels.dim() != 2:
        raise ConfigError(f"{config.teacher or run_dir}: needs a teacher with a learned batch "
                          f"sequence (full or shuffled-batch), not "
                          f"{teacher.config.curriculum!r}")  # fmt: skip

    curricula = {"generator": teacher.materialize(seed=config.seed)}
    for select in config.select:
        for seed in config.seeds:
            images = paired_targets(labels, data.train.x, data.train.y, seed, select)
            curricula[f"real {select} {seed}"] = list(zip(images, labels.to(device), strict=True))
    rows = []
    bar = tqdm(total=len(curricula) * len(archs), disable=not ctx.progress, unit="arch")
    for name, batches in curricula.items():
        accuracy = []
        for arch in archs:
            learner = fixed_learner_factory(arch, data, net, device)(config.seed)
            teacher.teach(learner, batches=batches)
            accuracy.append(evaluate(learner, data.test).accuracy)
            bar.update(1)
        order = sorted(range(len(archs)), key=accuracy.__getitem__)
        mid = order[(len(order) - 1) // 2 : len(order) // 2 + 1]
        quartiles = statistics.quantiles(accuracy, n=4) if len(accuracy) > 1 else accuracy * 3
        rows.append({
            "curriculum": name, "median": statistics.median(accuracy),
            "q1": quartiles[0], "q3": quartiles[-1],
            "below_20pct": sum(a < 0.2 for a in accuracy),
            "at_median": [str(archs[i]) for i in mid], "accuracy": accuracy,
        })  # fmt: skip
    bar.close()

    where = config.teacher or str(run_dir)
    meta = {
        "run": where, "outer_steps": state["step"], "count": len(archs), "seed": config.seed,
        "arch_seed": ARCH_SEED, "architectures": [str(a) for a in archs],
        "wall_s": time.perf_counter() - start_all, "machine": run_metadata(device),
    }  # fmt: skip
    steps = teacher.config.inner_steps
    lines = [
        f"| curriculum ({steps} steps, the run's schedule) | median | quartiles | below 20 % "
        "| at the median |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        at_median = "; ".join(f"`{a}`" for a in r["at_median"])
        lines.append(f"| {r['curriculum']} | {r['median']:.4f} | {r['q1']:.4f}-{r['q3']:.4f} | "
                     f"{r['below_20pct']} | {at_median} |")  # fmt: skip
    lines += ["", f"{len(archs)} architectures (seed {ARCH_SEED}), learner seed {config.seed}, "
              f"{where} at outer step {state['step']}; {meta['wall_s']:.0f} s on "
              f"{meta['machine']['device_name']}."]  # fmt: skip
    summary = {r["curriculum"]: r["median"] for r in rows} | {"meta": meta}
    return Outcome("\n".join(lines), summary, rows)


if __name__ == "__main__":
    raise SystemExit(main(NAME, Config, run, doc=__doc__))
