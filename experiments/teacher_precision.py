"""What does storing a teacher small cost its rewards? A meta-trained teacher teaches the same
sampled architectures of its space (same learner seed) as it is (fp32), and after an export to
fp16 and to int8 (``metaqnn gtn export --precision``: the large tensors as int8 with an fp16
scale per row); the rewards (validation accuracy after teaching) are compared with the fp32
ones: Spearman, Kendall, mean and largest absolute difference, and the file sizes.

    python -m experiments teacher_precision --set teacher=runs/design_mnist/teacher \
        --data-root ../shared/data --out experiments/results/teacher_precision_mnist

Writes ``results.md`` (one row per precision) and ``results.json`` (every reward).
``--quick`` meta-trains a tiny digits teacher in the scratch folder and scores 4 architectures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import kendalltau, spearmanr
from tqdm import tqdm

from experiments.common.architectures import ARCH_SEED, load_space_run
from experiments.common.checks import at_least, known_choices
from experiments.common.teachers import scored_teacher
from experiments.harness import Context, Outcome, main
from gtn.meta import load_meta_checkpoint, teacher_from_checkpoint
from gtn.pretrained import PRECISIONS, export_teacher
from metaqnn.core.data import Split
from metaqnn.core.training import evaluate
from metaqnn.runinfo import run_metadata
from metaqnn.teacher.run import TeacherRun
from metaqnn.teacher.shapes import fixed_learner_factory

NAME = "teacher_precision"


@dataclass(frozen=True)
class Config:
    """The teacher, the architectures and the stored precisions compared with fp32."""

    teacher: str = ""
    """A teacher run folder or checkpoint (relative to the repository root); empty: one
    meta-trained in the scratch folder with ``teacher_settings`` for ``teacher_outer_steps``."""
    teacher_settings: TeacherRun = field(default_factory=TeacherRun)
    """``TeacherRun`` fields of the scratch teacher (a TOML table)."""
    teacher_outer_steps: int = 1
    """Outer steps of the scratch teacher."""
    count: int = 24
    """Architectures sampled (seed :data:`~experiments.common.architectures.ARCH_SEED`)."""
    val_size: int = 1000
    """Validation images each reward is scored on (the first ones; 0: all)."""
    precisions: tuple[str, ...] = PRECISIONS
    """Stored precisions compared with the fp32 teacher."""
    seed: int = 0
    """Initialisation seed of every learner."""

    def __post_init__(self) -> None:
        known_choices("precisions", self.precisions, PRECISIONS, allow_empty=True)
        at_least(self, ("count", "teacher_outer_steps"))
        at_least(self, ("val_size",), least=0)  # 0: all


def run(config: Config, ctx: Context) -> Outcome:
    """Score the architectures with the fp32 teacher and with each stored precision."""
    start_all = time.perf_counter()
    run_dir = scored_teacher(ctx, config.teacher, config.teacher_settings,
                             config.teacher_outer_steps)  # fmt: skip
    loaded = load_space_run(run_dir, config.count, data_root=ctx.data_root, device=ctx.device)
    data, archs, net = loaded.data, loaded.archs, loaded.net
    n = config.val_size or len(data.val)
    val = Split(data.val.x[:n], data.val.y[:n])
    teachers = {"fp32": loaded.teacher}
    sizes = {}
    for precision in config.precisions:
        path = export_teacher(loaded.state, ctx.work / f"teacher-{precision}.pt",
                              precision=precision)  # fmt: skip
        sizes[precision] = path.stat().st_size
        teachers[precision] = teacher_from_checkpoint(load_meta_checkpoint(path), ctx.device)

    rewards: dict[str, list[float]] = {}
    bar = tqdm(total=len(teachers) * len(archs), disable=not ctx.progress, unit="arch")
    for name, teacher in teachers.items():
        rewards[name] = []
        for arch in archs:
            learner = fixed_learner_factory(arch, data, net, ctx.device)(config.seed)
            teacher.teach(learner)
            rewards[name].append(evaluate(learner, val).accuracy)
            bar.update(1)
    bar.close()

    ref = np.array(rewards["fp32"])
    rows = []
    for name in config.precisions:
        got = np.array(rewards[name])
        diff = np.abs(got - ref)
        rows.append({
            "precision": name, "bytes": sizes[name], "spearman": float(spearmanr(ref, got)[0]),
            "kendall": float(kendalltau(ref, got)[0]), "mean_abs_diff": float(diff.mean()),
            "max_abs_diff": float(diff.max()), "rewards": rewards[name],
        })  # fmt: skip
    where = config.teacher or str(run_dir)
    meta = {
        "run": where, "outer_steps": loaded.state["step"], "count": len(archs),
        "width_divisor": loaded.divisor, "val_images": len(val), "seed": config.seed,
        "arch_seed": ARCH_SEED, "architectures": [str(a) for a in archs],
        "fp32_rewards": rewards["fp32"], "wall_s": time.perf_counter() - start_all,
        "machine": run_metadata(ctx.device),
    }  # fmt: skip
    lines = [
        "| stored as | file MB | Spearman vs fp32 | Kendall vs fp32 | mean abs diff | "
        "largest abs diff |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['precision']} | {r['bytes'] / 1e6:.1f} | {r['spearman']:.3f} | "
                     f"{r['kendall']:.3f} | {r['mean_abs_diff']:.4f} | "
                     f"{r['max_abs_diff']:.4f} |")  # fmt: skip
    lines += ["", f"{len(archs)} architectures (seed {ARCH_SEED}) at widths / {loaded.divisor}, "
              f"learner seed {config.seed}, validation accuracy on {len(val)} images; {where} "
              f"at outer step {loaded.state['step']}; fp32 rewards from "
              f"{min(ref):.3f} to {max(ref):.3f}; {meta['wall_s']:.0f} s on "
              f"{meta['machine']['device_name']}."]  # fmt: skip
    summary = {r["precision"]: {k: r[k] for k in ("bytes", "spearman", "kendall",
                                                  "mean_abs_diff", "max_abs_diff")}
               for r in rows} | {"meta": meta}  # fmt: skip
    return Outcome("\n".join(lines), summary, rows)


if __name__ == "__main__":
    raise SystemExit(main(NAME, Config, run, doc=__doc__))
