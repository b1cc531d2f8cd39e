"""Which inner step rule lets one learning rate fit the whole search space? Real data, 32 steps
of 128, the same architectures as ``experiments.gtn_space_table`` (same seed), each trained
with one shared learning rate per rule: SGD with momentum 0.5 (the GTN paper's rule), the
``relative`` rule of ``gtn.inner_loop`` with momentum 0.5, and Adam. SGD and relative run
through the GTN's own functional inner loop (``gtn.inner_loop.unroll``) with a constant
schedule; Adam is ``torch.optim.Adam``.

    python -m experiments.step_rules --data-root ../shared/data --count 30 \
        --out experiments/results/step_rules_mnist

Writes ``OUT.md`` (median test accuracy per rule and rate, and the median of each
architecture's best rate of any rule) and ``OUT.json``. ``--quick``: 2 architectures, 4 steps.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from envs.space import get_space
from experiments.gtn_space_table import ARCH_SEED
from gtn.inner_loop import LearnedSGD, model_params, unroll
from metaqnn.core.data import Split, load_dataset
from metaqnn.core.training import evaluate
from metaqnn.runinfo import run_metadata
from metaqnn.teacher.shapes import GTN_LEARNER, fixed_learner_factory

#: Rule -> learning rates tried (one shared rate for every architecture).
GRID: dict[str, tuple[float, ...]] = {
    "sgd": (0.01, 0.03, 0.1, 0.3, 1.0),
    "relative": (0.01, 0.03, 0.1),
    "adam": (0.003, 0.01, 0.03),
}


def train(model, x, y, rule: str, lr: float, steps: int, batch: int, seed: int) -> None:
    """``steps`` real-data steps of ``batch`` (indices drawn with ``seed``), in place."""
    g = torch.Generator(device=x.device).manual_seed(seed)
    index = [torch.randint(len(y), (batch,), generator=g, device=x.device) for _ in range(steps)]
    model.train()
    if rule == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        for i in index:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[i]), y[i]).backward()
            opt.step()
        return
    schedule = LearnedSGD(steps, lr=lr, momentum=0.5, rule=rule).to(x.device)
    params, buffers = model_params(model)
    result = unroll(model, params, buffers, lambda t: (x[index[t]], y[index[t]]), schedule,
                    steps, create_graph=False)  # fmt: skip
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(result.params[name])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default=None)
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--count", type=int, default=30)
    p.add_argument("--width-divisor", type=int, default=16)
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seed", type=int, default=1, help="initialisation and batch seed")
    p.add_argument("--test-size", type=int, default=2000, help="test images scored (the first)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="experiments/results/step_rules")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args()
    start = time.perf_counter()
    device = torch.device(args.device)
    data = load_dataset(args.dataset, root=args.data_root, device=device)
    space = get_space(data.spec.preset).scale_widths(args.width_divisor)
    rng = np.random.default_rng(ARCH_SEED)
    archs = [space.sample(rng) for _ in range(2 if args.quick else args.count)]
    steps = 4 if args.quick else args.steps
    test = Split(data.test.x[: args.test_size], data.test.y[: args.test_size])
    configs = [(rule, lr) for rule, lrs in GRID.items() for lr in lrs]
    rows = []
    for arch in tqdm(archs, unit="arch", disable=args.no_progress):
        build = fixed_learner_factory(arch, data, GTN_LEARNER, device)
        accuracy = {}
        for rule, lr in configs:
            model = build(args.seed)
            train(model, data.train.x, data.train.y, rule, lr, steps, args.batch, args.seed)
            accuracy[f"{rule} {lr:g}"] = evaluate(model, test).accuracy
        rows.append({"architecture": str(arch), "accuracy": accuracy})
    keys = [f"{rule} {lr:g}" for rule, lr in configs]
    medians = {k: statistics.median(r["accuracy"][k] for r in rows) for k in keys}
    best = {
        rule: max((k for k in keys if k.startswith(rule + " ")), key=medians.__getitem__)
        for rule in GRID
    }
    oracle = statistics.median(max(r["accuracy"].values()) for r in rows)
    summary = {"medians": medians, "best_shared": best, "oracle_median": oracle,
               "wall_s": time.perf_counter() - start}  # fmt: skip
    meta = {"dataset": data.name, "count": len(archs), "width_divisor": args.width_divisor,
            "steps": steps, "batch": args.batch, "seed": args.seed, "arch_seed": ARCH_SEED,
            "test_size": len(test.y),
            "machine": run_metadata(device)}  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "summary": summary, "rows": rows}, indent=2)
    )
    lines = [
        f"Real {data.name} data, {steps} steps of {args.batch}, {len(archs)} architectures of "
        f"the {data.spec.preset} space (widths / {args.width_divisor}, seed {ARCH_SEED}), "
        f"one shared rate per row; accuracy on the first {len(test.y)} test images.",
        "",
        "| rule, rate | median | best for how many architectures |",
        "|---|---|---|",
    ]
    for k in keys:
        wins = sum(r["accuracy"][k] == max(r["accuracy"].values()) for r in rows)
        lines.append(f"| {k} | {medians[k]:.4f} | {wins} |")
    lines += [
        "",
        "Best shared rate per rule: "
        + ", ".join(f"{rule} {best[rule].split()[1]} ({medians[best[rule]]:.4f})" for rule in GRID)
        + f"; each architecture at its own best rule and rate: {oracle:.4f}.",
        f"{summary['wall_s']:.0f} s wall, {torch.get_num_threads()} torch threads, "
        f"{meta['machine']['platform']}, torch {meta['machine']['torch']}.",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
