"""Regret curves, their summaries and figures, and the exact proxy fidelity of a tabular
benchmark (``experiments.agents_tabular``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from envs.bench import BenchTable
from metaqnn.evaluation.correlation import rank_correlation
from metaqnn.markdown import markdown_table


def regret_curve(rewards: Sequence[float], best: float, budget: int) -> np.ndarray:
    """``best`` minus the best reward among the first k unique architectures, k = 1..budget
    (a run that stopped early keeps its last value)."""
    curve = best - np.maximum.accumulate(np.asarray(rewards, dtype=float))
    if len(curve) == 0:
        return np.full(budget, best)
    return np.concatenate([curve, np.full(max(0, budget - len(curve)), curve[-1])])[:budget]


def time_curve(architectures: Sequence[str], rewards: Sequence[float],
               cost: Mapping[str, float], best: float, grid: np.ndarray) -> np.ndarray:  # fmt: skip
    """Regret at each simulated time of ``grid``: an architecture's reward counts once its
    recorded training seconds (added up in the run's order) have passed; before the first,
    the regret is ``best``."""
    done = np.cumsum([cost[a] for a in architectures])
    found = np.maximum.accumulate(np.asarray(rewards, dtype=float))
    index = np.searchsorted(done, grid, side="right") - 1  # last finished by each time
    return np.where(index >= 0, best - found[np.clip(index, 0, None)], best)


def regret_summary(curves: np.ndarray, checkpoints: Sequence[int]) -> dict[str, Any]:
    """Mean, sd and a 95 % normal interval of the regret at each checkpoint (``curves``:
    runs x budget), with the runs and the share of runs that found the table's best."""
    out: dict[str, Any] = {"runs": int(curves.shape[0])}
    for k in checkpoints:
        at = curves[:, k - 1]
        sd = float(at.std(ddof=1)) if len(at) > 1 else 0.0
        half = 1.96 * sd / math.sqrt(len(at))
        out[f"regret_at_{k}"] = float(at.mean())
        out[f"regret_at_{k}_sd"] = sd
        out[f"regret_at_{k}_ci95"] = [float(at.mean() - half), float(at.mean() + half)]
        out[f"found_best_by_{k}"] = float(np.mean(at <= 1e-12))
    return out


def _reference_and_proxies(table: BenchTable, col: slice | int) -> tuple[np.ndarray, dict]:
    val = table.arrays["val_accuracy"]
    reference = np.mean(val, axis=1) if isinstance(col, slice) else val[:, col]
    proxies = {
        "GTN reward": table.arrays["gtn_reward"],
        "parameters (zero training)": table.arrays["parameters"],
        "FLOPs (zero training)": table.arrays["flops"],
    }
    if val.shape[1] >= 2 and not isinstance(col, slice):
        other = (col + 1) % val.shape[1]
        proxies[f"the same recipe, seed {int(table.seeds[other])}"] = val[:, other]
    elif val.shape[1] >= 2:
        proxies[f"one seed of the mean (seed {int(table.seeds[0])})"] = val[:, 0]
    return reference, proxies


def fidelity_rows(table: BenchTable, col: slice | int, top_k: Sequence[int]) -> list[dict]:
    """Over every architecture of the table: how each cheap reward ranks them against the
    table's validation accuracy (Spearman, Kendall, top-k share, with bootstrap intervals).
    Proxies with a missing value (a NaN GTN column) are reported as such."""
    reference, proxies = _reference_and_proxies(table, col)
    rows = []
    for name, values in proxies.items():
        values = np.asarray(values, dtype=float)
        if not np.all(np.isfinite(values)):
            rows.append({"proxy": name, "spearman": None, "note": "not recorded"})
            continue
        result = rank_correlation(values, reference, ks=top_k, resamples=300, seed=0)
        rows.append({
            "proxy": name, "n": result.n, "spearman": result.spearman.value,
            "spearman_ci": [result.spearman.low, result.spearman.high],
            "kendall": result.kendall.value,
            "top_k": {k: v.value for k, v in result.top_k.items()},
        })  # fmt: skip
    return rows


def plot_regret(curves: Mapping[str, np.ndarray], path: Path, *, xlabel: str,
                x: np.ndarray | None = None) -> None:  # fmt: skip
    """Mean regret per agent with a 95 % band, log y."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (agent, runs) in enumerate(curves.items()):
        xs = np.arange(1, runs.shape[1] + 1) if x is None else x
        mean = runs.mean(axis=0)
        half = 1.96 * runs.std(axis=0, ddof=1) / math.sqrt(len(runs)) if len(runs) > 1 else 0
        style = ("-", "--", ":", "-.")[i // 10 % 4]
        ax.plot(xs, np.maximum(mean, 1e-4), style, label=f"{agent} (n={len(runs)})")
        ax.fill_between(xs, np.maximum(mean - half, 1e-4), np.maximum(mean + half, 1e-4),
                        alpha=0.2)  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("regret (best val accuracy - best found)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report_markdown(summary: Mapping[str, Any], summaries: Mapping[str, Mapping[str, Any]],
                    fidelity: Sequence[Mapping[str, Any]], checkpoints: Sequence[int],
                    seeds: int) -> str:  # fmt: skip
    """The results' markdown: the regret table and the fidelity table."""
    lines = [
        f"Table `{summary['table']}`: space `{summary['space']}`, {summary['architectures']:,} "
        f"architectures x {summary['seeds_per_architecture']} seeds, reward = validation "
        f"accuracy ({summary['table_seed']}), best {summary['best_val_accuracy']:.4f}; "
        f"budget {summary['budget']} unique architectures, {seeds} seeds per agent.",
        "",
    ]
    head = ["agent", *[f"regret at {k} (mean ± sd)" for k in checkpoints],
            f"found the best by {checkpoints[-1]}"]  # fmt: skip
    rows = [[agent, *[f"{s[f'regret_at_{k}']:.4f} ± {s[f'regret_at_{k}_sd']:.4f}"
                      for k in checkpoints], f"{s[f'found_best_by_{checkpoints[-1]}']:.0%}"]
            for agent, s in summaries.items()]  # fmt: skip
    lines += [markdown_table(head, rows), "", "Exact fidelity over every architecture:", ""]
    ks = sorted({int(k) for r in fidelity for k in r.get("top_k", {})})
    head = ["proxy", "Spearman [95 % CI]", "Kendall", *[f"top-{k}" for k in ks]]
    rows = []
    for r in fidelity:
        if r["spearman"] is None:
            rows.append([r["proxy"], r["note"], "", *[""] * len(ks)])
            continue
        low, high = r["spearman_ci"]
        rows.append(
            [
                r["proxy"],
                f"{r['spearman']:.3f} [{low:.3f}, {high:.3f}]",
                f"{r['kendall']:.3f}",
                *[f"{r['top_k'].get(k, math.nan):.2f}" for k in ks],
            ]
        )
    lines.append(markdown_table(head, rows))
    return "\n".join(lines)
