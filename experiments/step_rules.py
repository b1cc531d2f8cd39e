"""Which inner step rule lets one learning rate fit the whole search space? Real data, 32 steps
of 128, the same architectures as ``gtn_space_table`` (same seed), each trained
with one shared learning rate per rule: SGD with momentum 0.5 (the GTN paper's rule), the
``relative`` rule of ``gtn.inner_loop`` with momentum 0.5, and Adam. SGD and relative run
through the GTN's own functional inner loop (``gtn.inner_loop.unroll``) with a constant
schedule; Adam is ``torch.optim.Adam``.

    python -m experiments step_rules --data-root ../shared/data --set count=30 \
        --out experiments/results/step_rules_mnist

Writes ``results.md`` (median test accuracy per rule and rate, and the median of each
architecture's best rate of any rule) and ``results.json``. ``--quick``: 2 architectures of the
digits space at full width, 4 steps.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from envs.space import get_space
from experiments.common.architectures import ARCH_SEED
from experiments.common.checks import at_least
from experiments.harness import Context, Outcome, main
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

NAME = "step_rules"


def train(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    rule: str,
    lr: float,
    steps: int,
    batch: int,
    seed: int,
) -> None:
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


@dataclass(frozen=True)
class Config:
    """The data, the architectures and the training budget of every rule."""

    dataset: str = "mnist"
    """Dataset (its space preset is sampled)."""
    count: int = 30
    """Architectures sampled (seed :data:`~experiments.common.architectures.ARCH_SEED`)."""
    width_divisor: int = 16
    """The space's conv filters and FC widths divided by this."""
    steps: int = 32
    """Real-data steps per training."""
    batch: int = 128
    """Images per step."""
    seed: int = 1
    """Initialisation and batch seed."""
    test_size: int = 2000
    """Test images scored (the first)."""

    def __post_init__(self) -> None:
        at_least(self, ("count", "width_divisor", "steps", "batch", "test_size"))


def run(config: Config, ctx: Context) -> Outcome:
    """Train every architecture with every rule and rate; medians per rule and rate."""
    start = time.perf_counter()
    device = ctx.device
    data = load_dataset(config.dataset, root=ctx.data_root, device=device)
    space = get_space(data.spec.preset).scale_widths(config.width_divisor)
    rng = np.random.default_rng(ARCH_SEED)
    archs = [space.sample(rng) for _ in range(config.count)]
    steps = config.steps
    test = Split(data.test.x[: config.test_size], data.test.y[: config.test_size])
    configs = [(rule, lr) for rule, lrs in GRID.items() for lr in lrs]
    rows = []
    for arch in tqdm(archs, unit="arch", disable=not ctx.progress):
        build = fixed_learner_factory(arch, data, GTN_LEARNER, device)
        accuracy = {}
        for rule, lr in configs:
            model = build(config.seed)
            train(model, data.train.x, data.train.y, rule, lr, steps, config.batch, config.seed)
            accuracy[f"{rule} {lr:g}"] = evaluate(model, test).accuracy
        rows.append({"architecture": str(arch), "accuracy": accuracy})
    keys = [f"{rule} {lr:g}" for rule, lr in configs]
    medians = {k: statistics.median(r["accuracy"][k] for r in rows) for k in keys}
    best = {
        rule: max((k for k in keys if k.startswith(rule + " ")), key=medians.__getitem__)
        for rule in GRID
    }
    oracle = statistics.median(max(r["accuracy"].values()) for r in rows)
    meta = {"dataset": data.name, "count": len(archs), "width_divisor": config.width_divisor,
            "steps": steps, "batch": config.batch, "seed": config.seed, "arch_seed": ARCH_SEED,
            "test_size": len(test.y),
            "machine": run_metadata(device)}  # fmt: skip
    summary = {"medians": medians, "best_shared": best, "oracle_median": oracle,
               "wall_s": time.perf_counter() - start, "meta": meta}  # fmt: skip
    lines = [
        f"Real {data.name} data, {steps} steps of {config.batch}, {len(archs)} architectures of "
        f"the {data.spec.preset} space (widths / {config.width_divisor}, seed {ARCH_SEED}), "
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
    return Outcome("\n".join(lines), summary, rows)


if __name__ == "__main__":
    raise SystemExit(main(NAME, Config, run, doc=__doc__))
