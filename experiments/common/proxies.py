"""Cheap estimates of an architecture's accuracy (proxies) and how faithfully they rank
architectures: the checkpointed constant-lr real-data run whose prefixes are the short real-data
proxies, the proxies' rank statistics against a reference, and the correlation-against-cost
figure. Used by the ``proxy_fidelity`` experiment."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from metaqnn.core.data import Split, iterate_batches
from metaqnn.core.training import evaluate
from metaqnn.errors import ConfigError
from metaqnn.evaluation.correlation import CorrelationResult, rank_correlation


def clock() -> np.ndarray:
    """(wall seconds, CPU seconds of this process): differences of two readings are costs. CPU
    time is what a proxy costs on a shared machine; wall time grows with the sharing."""
    return np.array([time.perf_counter(), time.process_time()])


def epoch_label(epochs: float) -> str:
    """``0.25`` -> ``"1/4 epoch"``, ``1`` -> ``"1 epoch"``, ``3`` -> ``"3 epochs"``."""
    if epochs < 1:
        return f"1/{round(1 / epochs)} epoch" if math.isclose(1 / round(1 / epochs), epochs) \
            else f"{epochs:g} epoch"  # fmt: skip
    return f"{epochs:g} epoch" + ("" if epochs == 1 else "s")


def train_with_checkpoints(
    model: nn.Module,
    train: Split,
    score: Split,
    checkpoints: Sequence[int],
    *,
    lr: float,
    batch_size: int,
    weight_decay: float,
    seed: int,
) -> list[dict[str, float]]:
    """Train ``model`` in place with Adam at a constant ``lr``, scoring it on ``score`` after
    each step count in ``checkpoints``.

    Passes over ``train`` are reshuffled (a CPU generator seeded with ``seed``); the last short
    batch of a pass is dropped. Training time excludes the scoring.

    Args:
        model: A freshly initialised model (its device is used).
        train: Training split.
        score: Split scored at each checkpoint.
        checkpoints: Increasing positive step counts; training stops at the last.
        lr: Adam's learning rate.
        batch_size: Examples per step.
        weight_decay: Adam's L2 penalty.
        seed: Seed of the batch order.

    Returns:
        Per checkpoint: ``step``, ``accuracy``, ``loss``, ``train_s`` and ``train_cpu_s``
        (training wall and CPU seconds up to it), ``score_s`` and ``score_cpu_s`` (of that
        scoring).
    """
    if not checkpoints or checkpoints[0] < 1 or any(b <= a for a, b in pairwise(checkpoints)):
        raise ConfigError(f"checkpoints {list(checkpoints)} must be increasing positive steps")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    pending, records, step, spent = list(checkpoints), [], 0, np.zeros(2)  # (wall, CPU) s
    model.train()
    while pending:
        start = clock()
        for x, y in iterate_batches(train, batch_size, shuffle=True, generator=generator,
                                    drop_last=True):  # fmt: skip
            loss = F.cross_entropy(model(x), y)  # (B, classes) logits
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step == pending[0]:
                spent += clock() - start
                t = clock()
                result = evaluate(model, score)
                scored = clock() - t
                records.append({
                    "step": step, "accuracy": result.accuracy, "loss": result.loss,
                    "train_s": float(spent[0]), "train_cpu_s": float(spent[1]),
                    "score_s": float(scored[0]), "score_cpu_s": float(scored[1]),
                })  # fmt: skip
                pending.pop(0)
                if not pending:
                    return records
                start = clock()
        spent += clock() - start
    return records


@dataclass(frozen=True)
class Proxy:
    """One cheap estimate over all architectures."""

    name: str
    """Its label in tables and figures."""
    values: list[float]
    """Its estimate per architecture."""
    costs: list[float]
    """CPU seconds per architecture."""
    wall: list[float]
    """Wall seconds per architecture."""
    steps: str
    """The training steps it takes, as text."""


def correlations(proxies: Sequence[Proxy], truth: Sequence[float], resamples: int
                 ) -> dict[str, CorrelationResult]:  # fmt: skip
    """Each proxy's rank statistics against ``truth`` (bootstrap seed 0)."""
    return {p.name: rank_correlation(p.values, truth, resamples=resamples, seed=0)
            for p in proxies}  # fmt: skip


def ci(e: Any) -> str:
    """An estimate with its interval: ``0.512 [0.31, 0.68]``."""
    return f"{e.value:.3f} [{e.low:.2f}, {e.high:.2f}]"


def plot_cost(
    proxies: Sequence[Proxy],
    stats: dict[str, CorrelationResult],
    path: Path,
    reference: Mapping[str, float],
) -> Path:
    """Spearman (all and top half, with bootstrap intervals) against the mean cost per
    architecture, log x, with the GTN paper's two values (``reference["gtn_spearman"]`` and
    ``reference["gtn_spearman_top_half"]``) as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(7.2, 4.6))
    handles = []
    for i, p in enumerate(proxies):
        colour = f"C{i % 10}"
        x = statistics.mean(p.costs)
        for key, marker, fill, shift in (("spearman", "o", colour, 1 / 1.04),
                                         ("spearman_top_half", "s", "white", 1.04)):  # fmt: skip
            e = getattr(stats[p.name], key)
            ax.errorbar([x * shift], [e.value], yerr=[[e.value - e.low], [e.high - e.value]],
                        fmt=marker, color=colour, mfc=fill, capsize=3)  # fmt: skip
        handles.append(Line2D([], [], color=colour, marker="o", ls="", label=p.name))
    handles += [
        Line2D([], [], color="k", marker="o", ls="", label="filled: Spearman, all"),
        Line2D([], [], color="k", marker="s", mfc="white", ls="", label="open: top half"),
    ]
    ax.axhline(reference["gtn_spearman"], color="grey", ls=":", lw=1)
    ax.axhline(reference["gtn_spearman_top_half"], color="grey", ls="--", lw=1)
    handles += [
        Line2D(
            [], [], color="grey", ls=":", label=f"GTN paper, all ({reference['gtn_spearman']:.2f})"
        ),
        Line2D(
            [],
            [],
            color="grey",
            ls="--",
            label=f"GTN paper, top half ({reference['gtn_spearman_top_half']:.2f})",
        ),
    ]
    ax.set_xscale("log")
    ax.set(xlabel="mean CPU seconds per architecture (one thread)",
           ylabel="rank correlation with the long budget")  # fmt: skip
    ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
