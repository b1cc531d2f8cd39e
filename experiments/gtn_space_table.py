"""Does a GTN teach the whole search space? Random architectures of a GTN run's (width-scaled)
search space, each trained by the GTN for its inner steps and by one epoch of real data, side
by side, with a family breakdown (GAP, several pools, deep, shallow, FC).

    python -m experiments.gtn_space_table runs/gtn/mnist-space-d16 --data-root ../shared/data \
        --count 30 --out experiments/results/gtn_space_mnist

Both trainings use the same learner (the GTN run's net config: weight norm + batch-statistics
batch norm, LeakyReLU, Kaiming init, no dropout) and the same initialisation seed; real data is
MetaQNN's recipe (Adam 0.001, batch 128) for ``--real-epochs`` epochs. Accuracy is on the test
split. Writes ``OUT.md`` (table and summary), ``OUT.json`` and ``OUT.png`` (GTN against real).
Use ``--quick`` for a smoke run (3 architectures, real data cut to 30 steps).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from envs.layers import Architecture
from envs.space import get_space
from experiments.proxy_fidelity import families
from gtn.meta import load_meta_checkpoint, teacher_from_checkpoint
from gtn.teacher import SyntheticTeacher
from metaqnn.core.data import Dataset, load_dataset
from metaqnn.core.nets import NetConfig, count_flops, count_parameters
from metaqnn.core.training import TrainConfig, evaluate, train_model
from metaqnn.runinfo import run_metadata
from metaqnn.teacher.shapes import fixed_learner_factory

#: Seed of the architecture sample: apart from meta-training's.
ARCH_SEED = 20_261_123


@dataclass(frozen=True)
class SpaceRun:
    """A ``metaqnn gtn train`` run across a search space, loaded for scoring."""

    state: dict[str, Any]
    """Its checkpoint."""
    data: Dataset
    teacher: SyntheticTeacher
    net: NetConfig
    """The learners' net config (the run's)."""
    divisor: int
    """Width divisor of the sampled space."""
    archs: list[Architecture]
    """The architectures sampled with :data:`ARCH_SEED`."""


def load_space_run(
    run: str | Path,
    count: int,
    *,
    data_root: str | None = None,
    device: torch.device | str = "cpu",
    width_divisor: int | None = None,
) -> SpaceRun:
    """The run's checkpoint, data, teacher and net config, and ``count`` architectures of its
    space (widths divided by ``width_divisor``, default the run's) drawn with
    :data:`ARCH_SEED`: the same architectures for every teacher of that space."""
    state = load_meta_checkpoint(run)
    extra = state["extra"]
    data = load_dataset(extra["dataset"], root=data_root, val_size=extra["val_size"],
                        seed=extra["seed"], device=device)  # fmt: skip
    divisor = width_divisor or int(extra.get("width_divisor", 1))
    space = get_space(extra["space"]).scale_widths(divisor)
    rng = np.random.default_rng(ARCH_SEED)
    return SpaceRun(
        state=state, data=data, teacher=teacher_from_checkpoint(state, device),
        net=NetConfig(**extra["net_config"]), divisor=divisor,
        archs=[space.sample(rng) for _ in range(count)],
    )  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a `metaqnn gtn train` run folder (learner space)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--count", type=int, default=30)
    p.add_argument("--real-epochs", type=int, default=1)
    p.add_argument("--seed", type=int, default=1, help="initialisation seed of every learner")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="experiments/results/gtn_space")
    p.add_argument(
        "--width-divisor",
        type=int,
        default=None,
        help="scale the space's widths (default: the GTN run's)",
    )
    p.add_argument(
        "--real-from",
        default=None,
        help="an earlier OUT.json with the same architectures: reuse its real-data "
        "accuracies instead of training again",
    )
    p.add_argument("--quick", action="store_true", help="3 architectures, 30 real-data steps")
    args = p.parse_args()
    start_all = time.perf_counter()

    run = Path(args.run)
    device = torch.device(args.device)
    loaded = load_space_run(run, 3 if args.quick else args.count, data_root=args.data_root,
                            device=device, width_divisor=args.width_divisor)  # fmt: skip
    state, data, teacher, net = loaded.state, loaded.data, loaded.teacher, loaded.net
    extra, divisor, archs = state["extra"], loaded.divisor, loaded.archs
    channels, size, _ = data.spec.input_shape
    real_config = TrainConfig(epochs=args.real_epochs, seed=args.seed,
                              steps=30 if args.quick else None)  # fmt: skip

    batches = teacher.materialize(seed=args.seed)  # the same for every architecture
    reuse = {}
    if args.real_from:
        earlier = json.loads(Path(args.real_from).read_text())
        if earlier["meta"]["real_epochs"] != args.real_epochs:
            raise SystemExit(f"{args.real_from} trained {earlier['meta']['real_epochs']} epochs")
        reuse = {r["architecture"]: (r["real"], r["real_s"]) for r in earlier["rows"]}
    rows = []
    for arch in tqdm(archs, unit="arch"):
        learner = fixed_learner_factory(arch, data, net, device)(args.seed)
        t = time.perf_counter()
        teacher.teach(learner, batches=batches)
        gtn_s = time.perf_counter() - t
        gtn_acc = evaluate(learner, data.test).accuracy
        if str(arch) in reuse:
            real_acc, real_s = reuse[str(arch)]
        else:
            factory = fixed_learner_factory(arch, data, net, device)
            t = time.perf_counter()
            result = train_model(lambda f=factory: f(args.seed), data.train, data.val,
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
    summary = {
        "gtn_median": statistics.median(gtn), "real_median": statistics.median(real),
        "gap_points": 100 * (statistics.median(real) - statistics.median(gtn)),
        "below_20pct": sum(a < 0.2 for a in gtn), "by_family": by_family,
        "gtn_s_mean": statistics.mean(r["gtn_s"] for r in rows),
        "real_s_mean": statistics.mean(r["real_s"] for r in rows),
        "wall_s": time.perf_counter() - start_all,
    }  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "run": str(run), "outer_steps": state["step"], "width_divisor": divisor,
        "learner": extra["learner"], "real_from": args.real_from,
        "inner_steps": teacher.config.inner_steps, "inner_batch": teacher.config.inner_batch,
        "real_epochs": args.real_epochs,
        "seed": args.seed, "arch_seed": ARCH_SEED, "machine": run_metadata(device),
    }  # fmt: skip
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "summary": summary,
                                                    "rows": rows}, indent=2))  # fmt: skip
    steps, batch = teacher.config.inner_steps, teacher.config.inner_batch
    lines = [
        f"| # | GTN {steps} steps of {batch} | real {args.real_epochs} epoch | families "
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
              f"{summary['wall_s']:.0f} s in all on {meta['machine']['device_name']}."]  # fmt: skip
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    colours = ["C3" if "GAP" in r["families"] else "C0" for r in rows]
    ax.scatter(real, gtn, c=colours, s=18)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
    ax.set_xlabel(f"test accuracy, {args.real_epochs} epoch of real data")
    ax.set_ylabel(f"test accuracy, {steps} GTN steps")
    ax.set_title(f"{len(rows)} random architectures (red: with GAP)")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    print(f"wrote {out.with_suffix('.md')}, .json, .png")


if __name__ == "__main__":
    main()
