"""Does a GTN teach the whole search space? Random architectures of a GTN run's (width-scaled)
search space, each trained by the GTN for its inner steps and by one epoch of real data, side
by side, with a family breakdown (GAP, several pools, deep, shallow, FC).

    python -m experiments gtn_space_table --set teacher=runs/gtn/mnist-space-d16 \
        --data-root ../shared/data --set count=30 --out experiments/results/gtn_space_mnist

Both trainings use the same learner (the GTN run's net config: weight norm + batch-statistics
batch norm, LeakyReLU, Kaiming init, no dropout) and the same initialisation seed; real data is
MetaQNN's recipe (Adam 0.001, batch 128) for ``real_epochs`` epochs. Accuracy is on the test
split. Writes ``results.md`` (table and summary), ``results.json`` and ``gtn_space.png`` (GTN
against real). ``--quick`` meta-trains a tiny digits teacher in the scratch folder and scores 3
architectures (real data cut to 30 steps).
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from experiments.common.architectures import ARCH_SEED, families, load_space_run
from experiments.common.checks import at_least
from experiments.common.teachers import scored_teacher
from experiments.harness import REPO_ROOT, Context, Outcome, main
from metaqnn.core.nets import count_flops, count_parameters
from metaqnn.core.training import TrainConfig, evaluate, train_model
from metaqnn.errors import ConfigError
from metaqnn.runinfo import run_metadata
from metaqnn.teacher.run import TeacherRun
from metaqnn.teacher.shapes import fixed_learner_factory

NAME = "gtn_space_table"


@dataclass(frozen=True)
class Config:
    """The teacher scored, the architectures and the real-data budget."""

    teacher: str = ""
    """A teacher run folder or checkpoint meta-trained across a space (relative to the
    repository root), scored as it is; empty: one meta-trained in the scratch folder with
    ``teacher_settings`` for ``teacher_outer_steps``."""
    teacher_settings: TeacherRun = field(default_factory=TeacherRun)
    """``TeacherRun`` fields of the scratch teacher (a TOML table)."""
    teacher_outer_steps: int = 1
    """Outer steps of the scratch teacher."""
    count: int = 30
    """Architectures sampled (seed :data:`~experiments.common.architectures.ARCH_SEED`)."""
    real_epochs: int = 1
    """Epochs of real data."""
    real_steps: int = 0
    """Cut real-data training to this many steps (0: the whole epochs)."""
    seed: int = 1
    """Initialisation seed of every learner."""
    width_divisor: int = 0
    """Scale the space's widths by this (0: the teacher run's divisor)."""
    real_from: str = ""
    """An earlier ``results.json`` of this experiment (or ``OUT.json`` of its earlier script)
    with the same architectures (relative to the repository root): reuse its real-data
    accuracies instead of training again; empty: train."""

    def __post_init__(self) -> None:
        at_least(self, ("count", "real_epochs", "teacher_outer_steps"))
        at_least(self, ("real_steps", "width_divisor"), least=0)


def earlier_real(path: str, real_epochs: int) -> dict[str, tuple[float, float]]:
    """Architecture -> (real-data accuracy, seconds) of an earlier table with as many epochs.

    Raises:
        ConfigError: If the file is missing or trained another number of epochs.
    """
    file = Path(path) if Path(path).is_absolute() else REPO_ROOT / path
    if not file.is_file():
        raise ConfigError(f"real_from {path!r}: no such file {file}")
    earlier = json.loads(file.read_text())
    # the earlier script wrote {"meta": ...}; the harness writes {"config": ...}
    epochs = (earlier.get("meta") or earlier["config"])["real_epochs"]
    if epochs != real_epochs:
        raise ConfigError(f"real_from {path!r} trained {epochs} epochs, not {real_epochs}")
    return {r["architecture"]: (r["real"], r["real_s"]) for r in earlier["rows"]}


def _plot(rows: list[dict[str, Any]], real_epochs: int, steps: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    colours = ["C3" if "GAP" in r["families"] else "C0" for r in rows]
    ax.scatter([r["real"] for r in rows], [r["gtn"] for r in rows], c=colours, s=18)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
    ax.set_xlabel(f"test accuracy, {real_epochs} epoch of real data")
    ax.set_ylabel(f"test accuracy, {steps} GTN steps")
    ax.set_title(f"{len(rows)} random architectures (red: with GAP)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(config: Config, ctx: Context) -> Outcome:
    """Score the sampled architectures by the teacher and by real data; table and figure."""
    start_all = time.perf_counter()
    run_dir = scored_teacher(ctx, config.teacher, config.teacher_settings,
                             config.teacher_outer_steps)  # fmt: skip
    device = ctx.device
    loaded = load_space_run(run_dir, config.count, data_root=ctx.data_root, device=device,
                            width_divisor=config.width_divisor or None)  # fmt: skip
    state, data, teacher, net = loaded.state, loaded.data, loaded.teacher, loaded.net
    extra, divisor, archs = state["extra"], loaded.divisor, loaded.archs
    channels, size, _ = data.spec.input_shape
    real_config = TrainConfig(epochs=config.real_epochs, seed=config.seed,
                              steps=config.real_steps or None)  # fmt: skip

    batches = teacher.materialize(seed=config.seed)  # the same for every architecture
    reuse = earlier_real(config.real_from, config.real_epochs) if config.real_from else {}
    rows = []
    for arch in tqdm(archs, unit="arch", disable=not ctx.progress):
        learner = fixed_learner_factory(arch, data, net, device)(config.seed)
        t = time.perf_counter()
        teacher.teach(learner, batches=batches)
        gtn_s = time.perf_counter() - t
        gtn_acc = evaluate(learner, data.test).accuracy
        if str(arch) in reuse:
            real_acc, real_s = reuse[str(arch)]
        else:
            factory = fixed_learner_factory(arch, data, net, device)
            t = time.perf_counter()
            result = train_model(lambda f=factory: f(config.seed), data.train, data.val,
                                 real_config, device=device)  # fmt: skip
            real_s = time.perf_counter() - t
            real_acc = evaluate(result.model, data.test).accuracy
        rows.append({
            "architecture": str(arch), "families": families(arch), "gtn": gtn_acc,
            "real": real_acc, "gtn_s": gtn_s, "real_s": real_s,
            "parameters": count_parameters(learner),
            "mflops": count_flops(arch, in_channels=channels, input_size=size) / 1e6,
        })  # fmt: skip

    gtn = [r["gtn"] for r in rows]
    real = [r["real"] for r in rows]
    fams = sorted({f for r in rows for f in r["families"]})
    by_family = {
        f: {
            "n": sum(f in r["families"] for r in rows),
            "gtn_median": statistics.median(r["gtn"] for r in rows if f in r["families"]),
            "real_median": statistics.median(r["real"] for r in rows if f in r["families"]),
        }
        for f in fams
    }
    meta = {
        "run": str(config.teacher or run_dir), "outer_steps": state["step"],
        "width_divisor": divisor, "learner": extra["learner"], "real_from": config.real_from,
        "inner_steps": teacher.config.inner_steps, "inner_batch": teacher.config.inner_batch,
        "real_epochs": config.real_epochs,
        "seed": config.seed, "arch_seed": ARCH_SEED, "machine": run_metadata(device),
    }  # fmt: skip
    summary = {
        "gtn_median": statistics.median(gtn), "real_median": statistics.median(real),
        "gap_points": 100 * (statistics.median(real) - statistics.median(gtn)),
        "below_20pct": sum(a < 0.2 for a in gtn), "by_family": by_family,
        "gtn_s_mean": statistics.mean(r["gtn_s"] for r in rows),
        "real_s_mean": statistics.mean(r["real_s"] for r in rows),
        "wall_s": time.perf_counter() - start_all, "meta": meta,
    }  # fmt: skip
    steps, batch = teacher.config.inner_steps, teacher.config.inner_batch
    lines = [
        f"| # | GTN {steps} steps of {batch} | real {config.real_epochs} epoch | families "
        "| architecture |",
        "|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows, 1):
        lines.append(f"| {i} | {r['gtn']:.4f} | {r['real']:.4f} | {', '.join(r['families'])} | "
                     f"`{r['architecture']}` |")  # fmt: skip
    lines += ["", "| family | n | GTN median | real median |", "|---|---|---|---|"]
    for f, v in by_family.items():
        lines.append(f"| {f} | {v['n']} | {v['gtn_median']:.4f} | {v['real_median']:.4f} |")
    lines += ["", f"Median over {len(rows)}: GTN {summary['gtn_median']:.4f}, real "
              f"{summary['real_median']:.4f} ({summary['gap_points']:.2f} points apart); "
              f"{summary['below_20pct']} below 20 %. Mean time per architecture: GTN "
              f"{summary['gtn_s_mean']:.1f} s, real {summary['real_s_mean']:.1f} s; "
              f"{summary['wall_s']:.0f} s in all on {meta['machine']['device_name']}.",
              "", "![GTN against real data](gtn_space.png)"]  # fmt: skip
    _plot(rows, config.real_epochs, steps, ctx.figure("gtn_space.png"))
    return Outcome("\n".join(lines), summary, rows)


if __name__ == "__main__":
    raise SystemExit(main(NAME, Config, run, doc=__doc__))
