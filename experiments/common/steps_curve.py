"""Accuracy against inner steps: shared by the ``curricula`` and ``gtn_vs_dd`` experiments.

A meta-trained teacher (GTN or Dataset Distillation) teaches fresh learners (one per seed) and
the learner is scored after each of several step counts ``k``. One unroll per seed serves every
``k``: the parameters after step ``k`` are kept (``unroll(keep_steps=...)``), which is exactly
``teacher.teach(learner, k, seed=seed)`` since step ``t`` draws the same batch whatever the
total. For a teacher meta-trained for ``T`` steps, ``k < T`` therefore means its first ``k``
batches and learned learning rates (the schedule was optimised for the end point ``T`` only).

Real-data baselines train the same learner with the same batch size for the same step counts,
with every learning rate of a grid; for each ``k`` the learning rate with the best mean
validation accuracy is the "tuned" one, and its test accuracy is reported.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gtn.teacher import SyntheticTeacher
from metaqnn.core.data import Split
from metaqnn.core.training import evaluate
from metaqnn.markdown import markdown_table

#: Seed -> a freshly initialised learner on the evaluation device.
LearnerFactory = Callable[[int], nn.Module]

#: Real-data optimisers by name: (parameters, learning rate) -> optimiser.
OPTIMIZERS: dict[str, Callable[[list[nn.Parameter], float], torch.optim.Optimizer]] = {
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
    "sgd-momentum": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
}


@dataclass(frozen=True)
class CurvePoint:
    """One learner scored after ``steps`` inner steps."""

    method: str
    """What trained it (e.g. ``GTN full``, ``real b128``)."""
    steps: int
    """Inner (optimiser) steps taken."""
    seed: int
    """Learner initialisation (and data order / curriculum noise) seed."""
    test_accuracy: float
    """Accuracy on the test subset."""
    val_accuracy: float | None = None
    """Accuracy on the validation subset (real-data runs: used to pick the learning rate)."""
    lr: float | None = None
    """Learning rate (real-data runs)."""


def timed(compute: Callable[[], object]) -> dict[str, float]:
    """Run ``compute()`` for its effect; ``{"wall_s", "cpu_s"}``: the wall and process CPU
    seconds it took (plain JSON for ``ctx.memo``)."""
    wall, cpu = time.perf_counter(), time.process_time()
    compute()
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


def timed_points(compute: Callable[[], list[CurvePoint]]) -> dict[str, object]:
    """``compute()`` as plain JSON for ``ctx.memo``: ``{"rows": [...], "wall_s", "cpu_s"}``
    (the wall and process CPU seconds it took)."""
    wall, cpu = time.perf_counter(), time.process_time()
    rows = [asdict(p) for p in compute()]
    return {"rows": rows, "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


def subset(split: Split, size: int | None) -> Split:
    """The first ``size`` examples of ``split`` (all of them for None or 0)."""
    if not size or size >= len(split):
        return split
    return Split(split.x[:size], split.y[:size])


def check_steps(steps: Sequence[int]) -> tuple[int, ...]:
    """Step counts sorted and deduplicated; ValueError naming a count below 1 or an empty list."""
    if not steps:
        raise ValueError("steps: expected at least one step count, got none")
    bad = [k for k in steps if k < 1]
    if bad:
        raise ValueError(f"steps: counts must be >= 1, got {bad}")
    return tuple(sorted(set(steps)))


def _load(learner: nn.Module, params: dict[str, torch.Tensor]) -> nn.Module:
    with torch.no_grad():
        for name, param in learner.named_parameters():
            param.copy_(params[name])
    return learner


def teacher_curve(
    teacher: SyntheticTeacher,
    factory: LearnerFactory,
    test: Split,
    steps: Sequence[int],
    seeds: Sequence[int],
    *,
    method: str,
) -> list[CurvePoint]:
    """Test accuracy of fresh learners after each of ``steps`` steps of ``teacher``.

    Step counts above the teacher's ``inner_steps`` are dropped and its ``inner_steps`` is
    always included (its end point).

    Args:
        teacher: A meta-trained teacher, on the learners' device.
        factory: Seed -> a fresh learner.
        test: Scoring examples.
        steps: Step counts ``k``.
        seeds: Learner seeds; seed ``s`` also seeds the curriculum's noise (as ``teach``).
        method: Label of the rows.

    Returns:
        One :class:`CurvePoint` per (seed, k).
    """
    total = teacher.config.inner_steps
    ks = sorted({k for k in check_steps(steps) if k <= total} | {total})
    device = next(teacher.parameters()).device
    points = []
    for seed in seeds:
        learner = factory(seed)
        rng = torch.Generator(device=device).manual_seed(seed)
        teacher.train()
        result = teacher.unroll(
            learner, ks[-1], generator=rng, create_graph=False, keep_steps=frozenset(ks)
        )
        for k in ks:
            params = result.params if k == ks[-1] else result.kept[k]
            accuracy = evaluate(_load(learner, params), test).accuracy
            points.append(CurvePoint(method, k, seed, accuracy))
    return points


def real_curve(
    factory: LearnerFactory,
    train: Split,
    val: Split,
    test: Split,
    steps: Sequence[int],
    seeds: Sequence[int],
    lrs: Sequence[float],
    *,
    batch_size: int,
    optimizer: str = "adam",
    method: str = "real",
) -> list[CurvePoint]:
    """Validation and test accuracy of fresh learners after each of ``steps`` real-data steps.

    Every (learning rate, seed) pair is one run of ``max(steps)`` steps on batches drawn
    without replacement (reshuffled every epoch) from ``train``, the order seeded by the seed;
    the learner is scored after each ``k`` (a constant learning rate makes that the same as a
    run of ``k`` steps).

    Args:
        factory: Seed -> a fresh learner.
        train: Training examples (on the learners' device).
        val: Examples that pick the learning rate (see :func:`tuned`).
        test: Scoring examples.
        steps: Step counts ``k``.
        seeds: Learner and data-order seeds.
        lrs: Learning rates tried.
        batch_size: Examples per step.
        optimizer: A name from :data:`OPTIMIZERS`.
        method: Label of the rows.

    Returns:
        One :class:`CurvePoint` per (lr, seed, k), with ``val_accuracy`` and ``lr`` set.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose from {sorted(OPTIMIZERS)}")
    if batch_size < 1 or not lrs or any(lr <= 0 for lr in lrs):
        raise ValueError(f"real_curve: batch_size={batch_size} must be >= 1 and lrs={list(lrs)} "
                         "positive and not empty")  # fmt: skip
    ks = check_steps(steps)
    points = []
    for lr in lrs:
        for seed in seeds:
            learner = factory(seed)
            learner.train()
            opt = OPTIMIZERS[optimizer](list(learner.parameters()), lr)
            gen = torch.Generator().manual_seed(seed)
            order = torch.empty(0, dtype=torch.int64)
            for t in range(1, ks[-1] + 1):
                if len(order) < batch_size:
                    order = torch.cat([order, torch.randperm(len(train), generator=gen)])
                index, order = order[:batch_size].to(train.x.device), order[batch_size:]
                loss = nn.functional.cross_entropy(learner(train.x[index]), train.y[index])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if t in ks:
                    points.append(
                        CurvePoint(
                            method,
                            t,
                            seed,
                            evaluate(learner, test).accuracy,
                            val_accuracy=evaluate(learner, val).accuracy,
                            lr=lr,
                        )
                    )
    return points


def tuned(points: Sequence[CurvePoint], method: str) -> list[CurvePoint]:
    """The real-data points of ``method`` at, for each step count, the learning rate with the
    best mean validation accuracy over seeds (ties: the smaller learning rate)."""
    mine = [p for p in points if p.method == method]
    if not mine:
        raise ValueError(f"no points of method {method!r}")
    chosen = []
    for k in sorted({p.steps for p in mine}):
        at_k = [p for p in mine if p.steps == k]
        lrs = sorted({p.lr for p in at_k if p.lr is not None})
        if not lrs:
            raise ValueError(f"method {method!r} at {k} steps has no learning rates to tune")
        best = max(lrs, key=lambda lr: (np.mean([p.val_accuracy for p in at_k if p.lr == lr]), -lr))
        chosen += [p for p in at_k if p.lr == best]
    return chosen


@dataclass(frozen=True)
class CurveSummary:
    """Mean and spread over seeds of one method at one step count."""

    method: str
    steps: int
    mean: float
    std: float
    seeds: int
    lr: float | None = None


def summarize(points: Sequence[CurvePoint]) -> list[CurveSummary]:
    """Per (method, steps): mean and population std of the test accuracy over seeds."""
    groups: dict[tuple[str, int], list[CurvePoint]] = {}
    for p in points:
        groups.setdefault((p.method, p.steps), []).append(p)
    out = []
    for (method, k), group in groups.items():
        accs = np.array([p.test_accuracy for p in group])
        lrs = {p.lr for p in group}
        lr = lrs.pop() if len(lrs) == 1 else None
        out.append(CurveSummary(method, k, float(accs.mean()), float(accs.std()), len(accs), lr))
    return out


def curve_table(summaries: Sequence[CurveSummary], methods: Sequence[str]) -> str:
    """Markdown: one row per step count, one column per method (``mean ± std`` in %; the tuned
    learning rate in brackets for real-data columns)."""
    by = {(s.method, s.steps): s for s in summaries}
    ks = sorted({s.steps for s in summaries})
    rows = []
    for k in ks:
        row = [str(k)]
        for m in methods:
            s = by.get((m, k))
            if s is None:
                row.append("")
                continue
            cell = f"{100 * s.mean:.2f} ± {100 * s.std:.2f}"
            row.append(cell + (f" (lr {s.lr:g})" if s.lr is not None else ""))
        rows.append(row)
    return markdown_table(["inner steps", *methods], rows)


def plot_curves(
    summaries: Sequence[CurveSummary],
    methods: Sequence[str],
    path: str | Path,
    *,
    title: str,
    references: Sequence[tuple[str, float, float | None]] = (),
) -> Path:
    """Test accuracy against inner steps (log2 axis), mean with a ±1 std band per method;
    ``references`` are (label, value, std or None) drawn as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for m in methods:
        pts = sorted((s for s in summaries if s.method == m), key=lambda s: s.steps)
        if not pts:
            continue
        x = np.array([s.steps for s in pts])
        y = np.array([100 * s.mean for s in pts])
        e = np.array([100 * s.std for s in pts])
        (line,) = ax.plot(x, y, marker="o", label=m)
        ax.fill_between(x, y - e, y + e, alpha=0.2, color=line.get_color())
    for label, value, std in references:
        ax.axhline(100 * value, linestyle="--", color="grey", linewidth=1)
        if std:
            ax.axhspan(100 * (value - std), 100 * (value + std), color="grey", alpha=0.1)
        # x in axes coordinates, y in data coordinates: the label sits at the left edge
        ax.text(0.01, 100 * value, label, transform=ax.get_yaxis_transform(), va="bottom",
                fontsize=8, color="dimgrey")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xlabel("inner steps")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(textwrap.fill(title, 70), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
