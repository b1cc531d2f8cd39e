"""How much does a warm-started GTN lose against the real images it imitates, and how much do
the median's figures move with the choice of those images? A GTN run's learned schedule teaches
the sampled architectures of ``experiments.gtn_space_table`` (same seeds) once with the
generator's own batches and once with each set of real training images a warm start would fit
(``gtn.warmstart.paired_targets``: same labels, same batch layout), for every selection and
seed asked for.

    python -m experiments.real_curriculum runs/gtn/mnist-space-d16-warm-schedule-200 \
        --data-root ../shared/data --select random,kmeans --seeds 0,1,2 \
        --out experiments/results/real_curriculum_mnist

Accuracy is on the test split. Writes ``OUT.md`` (one row per curriculum: median, quartiles,
below 20 %, the architectures at the median) and ``OUT.json`` (every accuracy). ``--quick``:
3 architectures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from tqdm import tqdm

from experiments.gtn_space_table import ARCH_SEED, load_space_run
from gtn.warmstart import SELECTIONS, paired_targets
from metaqnn.cli.options import ints, names
from metaqnn.core.training import evaluate
from metaqnn.errors import ConfigError
from metaqnn.runinfo import run_metadata
from metaqnn.teacher.shapes import fixed_learner_factory


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a `metaqnn gtn train` run folder (learner space)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--count", type=int, default=30)
    p.add_argument("--select", default="random", help=f"comma list of {', '.join(SELECTIONS)}")
    p.add_argument("--seeds", default="0", help="comma list of selection seeds")
    p.add_argument("--seed", type=int, default=1, help="initialisation seed of every learner")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="experiments/results/real_curriculum")
    p.add_argument("--quick", action="store_true", help="3 architectures")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args()
    try:
        selects, seeds = names(args.select, SELECTIONS, "selection"), ints(args.seeds, "--seeds")
    except ConfigError as exc:
        raise SystemExit(f"real_curriculum: {exc}") from None
    if not selects:
        raise SystemExit(f"real_curriculum: --select {args.select!r}: give at least one selection")
    start_all = time.perf_counter()

    run = Path(args.run)
    device = torch.device(args.device)
    loaded = load_space_run(run, 3 if args.quick else args.count, data_root=args.data_root,
                            device=device)  # fmt: skip
    state, data, teacher, net, archs = (loaded.state, loaded.data, loaded.teacher, loaded.net,
                                        loaded.archs)  # fmt: skip
    labels = getattr(teacher.curriculum, "labels", None)
    if labels is None or labels.dim() != 2:
        raise SystemExit(f"{run}: needs a teacher with a learned batch sequence (full or "
                         f"shuffled-batch), not {teacher.config.curriculum!r}")  # fmt: skip

    curricula = {"generator": teacher.materialize(seed=args.seed)}
    for select in selects:
        for seed in seeds:
            images = paired_targets(labels, data.train.x, data.train.y, seed, select)
            curricula[f"real {select} {seed}"] = list(zip(images, labels.to(device), strict=True))
    rows = []
    bar = tqdm(total=len(curricula) * len(archs), disable=args.no_progress, unit="arch")
    for name, batches in curricula.items():
        accuracy = []
        for arch in archs:
            learner = fixed_learner_factory(arch, data, net, device)(args.seed)
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

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "run": str(run), "outer_steps": state["step"], "count": len(archs), "seed": args.seed,
        "arch_seed": ARCH_SEED, "architectures": [str(a) for a in archs],
        "wall_s": time.perf_counter() - start_all, "machine": run_metadata(device),
    }  # fmt: skip
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
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
    lines += ["", f"{len(archs)} architectures (seed {ARCH_SEED}), learner seed {args.seed}, "
              f"{run} at outer step {state['step']}; {meta['wall_s']:.0f} s on "
              f"{meta['machine']['device_name']}."]  # fmt: skip
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
