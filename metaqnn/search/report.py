"""A search's results: the ranked top-K (CSV and markdown), MetaQNN's Figure 3 (rolling mean
reward against iteration with the mean of each epsilon stage as bars), and retraining the top
models on real data with the full recipe."""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from envs.layers import Architecture
from metaqnn.core.checkpoint import save_checkpoint
from metaqnn.errors import ConfigError
from metaqnn.markdown import markdown_table
from metaqnn.rewards.spec import build_reward
from metaqnn.search.config import SearchConfig
from metaqnn.search.schedule import EpsilonSchedule
from metaqnn.search.store import ModelRecord, SearchStore

COLUMNS = [
    "rank",
    "id",
    "architecture",
    "reward",
    "val_accuracy",
    "test_accuracy",
    "retrain_epochs",
    "retrain_val_accuracy",
    "retrain_test_accuracy",
    "retrain_test_error_pct",
    "parameters",
    "flops",
    "epsilon",
    "wall_time_s",
    "status",
]


def ranked(models: list[ModelRecord]) -> list[ModelRecord]:
    """Models by reward, best first (ties: earlier first)."""
    return sorted(models, key=lambda m: (-m.reward, m.id))


def top_rows(store: SearchStore, k: int) -> list[dict[str, Any]]:
    """The top ``k`` as dicts with the :data:`COLUMNS` (retraining results when stored)."""
    retrained = store.retrained()
    rows = []
    for rank, m in enumerate(ranked(store.models())[:k], start=1):
        again = retrained.get(m.architecture, {})
        test = again.get("test_accuracy")
        rows.append(
            {
                "rank": rank,
                "id": m.id,
                "architecture": m.architecture,
                "reward": m.reward,
                "val_accuracy": m.val_accuracy,
                "test_accuracy": m.test_accuracy,
                "retrain_epochs": again.get("epochs"),
                "retrain_val_accuracy": again.get("val_accuracy"),
                "retrain_test_accuracy": test,
                "retrain_test_error_pct": None if test is None else round(100 * (1 - test), 2),
                "parameters": m.parameters,
                "flops": m.flops,
                "epsilon": m.epsilon,
                "wall_time_s": m.wall_time_s,
                "status": m.status,
            }
        )
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def stage_means(models: list[ModelRecord]) -> list[tuple[float, int, float]]:
    """(epsilon, models, mean reward) per epsilon stage, in schedule order."""
    out: list[tuple[float, int, float]] = []
    for m in models:
        if out and out[-1][0] == m.epsilon:
            eps, n, mean = out[-1]
            out[-1] = (eps, n + 1, mean + (m.reward - mean) / (n + 1))
        else:
            out.append((m.epsilon, 1, m.reward))
    return out


def rolling_window(n: int, cap: int = 50) -> int:
    """The rolling-mean window for ``n`` models: a tenth of the run, at least 2 and at most
    ``cap`` (MetaQNN's 50 on its 2,700 models), so short runs still draw a line."""
    return max(1, min(n, max(2, min(cap, round(n / 10)))))


def plot_figure3(
    models: list[ModelRecord],
    path: str | os.PathLike[str],
    *,
    window: int | None = None,
    title: str = "",
    reward_label: str = "reward",
) -> None:
    """MetaQNN's Figure 3: the rolling mean reward against iteration (unique models in order
    of completion) and, as bars spanning each epsilon stage, the stage's mean reward. The
    window defaults to :func:`rolling_window` of the run's length; ``reward_label`` names the
    reward on the y axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rewards = np.array([m.reward for m in models], dtype=float)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    start = 0
    for i, (eps, n, mean) in enumerate(stage_means(models)):
        ax.bar(start + n / 2, mean, width=n, alpha=0.25, color=f"C{i % 10}", edgecolor="none")
        ax.text(start + n / 2, mean, f"ε={eps:g}\n{mean:.3f}", ha="center", va="bottom", fontsize=7)
        start += n
    if len(rewards):
        w = rolling_window(len(rewards)) if window is None else max(1, min(window, len(rewards)))
        rolling = np.convolve(rewards, np.ones(w) / w, mode="valid")
        ax.plot(
            np.arange(w, len(rewards) + 1),
            rolling,
            color="k",
            lw=1.5,
            label=f"rolling mean over {w} models",
        )
        ax.scatter(
            np.arange(1, len(rewards) + 1),
            rewards,
            s=3,
            color="grey",
            alpha=0.4,
            label="each model",
        )
    ax.set_xlabel("iteration (unique models)")
    ax.set_ylabel(reward_label)
    ax.set_title(title or "Q-learning performance (MetaQNN Fig. 3)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def reward_label(spec: Any) -> str:
    """What a search's reward is, for an axis: GTN-taught or real-data validation accuracy."""
    if spec.name == "gtn":
        steps = f"{spec.gtn_steps} " if spec.gtn_steps else ""
        return f"reward: val. accuracy after {steps}GTN steps"
    if spec.name == "real":
        return f"reward: val. accuracy after {spec.epochs} real epochs"
    return f"reward ({spec.name})"


def write_report(store: SearchStore, out_dir: str | os.PathLike[str], *, top: int = 10) -> dict:
    """Write ``top.csv``, ``top.md`` and ``figure3.png`` into ``out_dir``; return the paths.

    Raises:
        CheckpointError: If the store holds an unusable config or rows.
        ConfigError: If ``out_dir`` cannot be written (a read-only run folder).
    """
    config = SearchConfig.from_stored(store.config, store.path)
    try:
        return _write_report(store, config, Path(out_dir), top)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the report to {out_dir} ({exc.strerror or exc}); write it "
            "elsewhere with `metaqnn report RUN_DIR --out DIR`"
        ) from None


def _write_report(store: SearchStore, config: SearchConfig, out: Path, top: int) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    rows = top_rows(store, top)
    with open(out / "top.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    models = store.models()
    schedule = EpsilonSchedule.parse(config.schedule)
    failed = sum(m.status != "ok" for m in models)
    lines = [
        f"# Search {out.name}",
        "",
        f"{len(models)} of {schedule.total} unique models ({failed} failed); reward "
        f"`{config.reward.name}` on `{config.reward.dataset}`.",
        "",
        markdown_table(COLUMNS, [[_fmt(r[c]) for c in COLUMNS] for r in rows]),
        "",
        "Mean reward per epsilon stage:",
        "",
        markdown_table(
            ["epsilon", "models", "mean reward"],
            [[f"{e:g}", n, f"{m:.4f}"] for e, n, m in stage_means(models)],
        ),
    ]
    (out / "top.md").write_text("\n".join(lines) + "\n")
    plot_figure3(models, out / "figure3.png", reward_label=reward_label(config.reward))
    return {"csv": out / "top.csv", "markdown": out / "top.md", "figure": out / "figure3.png"}


def retrain_top(
    store: SearchStore,
    k: int,
    *,
    epochs: int = 20,
    device: str | None = None,
    data_root: str | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Retrain the top ``k`` on real data with MetaQNN's full recipe for ``epochs`` epochs,
    measure test accuracy, and store the results (already retrained ones are skipped)."""
    store.check_writable()  # before hours of training, not after
    spec = SearchConfig.from_stored(store.config, store.path).reward
    spec = replace(
        spec,
        name="real",
        epochs=epochs,
        measure_test=True,
        device=device or spec.device,
        data_root=data_root or spec.data_root,
    )
    reward = build_reward(spec)
    done = store.retrained()
    results = []
    top = [m.architecture for m in ranked(store.models())[:k]]
    todo = [a for a in top if done.get(a, {}).get("epochs") != epochs]
    folder = Path(store.path).parent / "retrained"
    for arch_text in tqdm(todo, desc="retraining", disable=not progress, unit="model"):
        kept: dict[str, Any] = {}
        reward.on_trained = lambda arch, trained, kept=kept: kept.update(result=trained)
        r = reward.evaluate(Architecture.parse(arch_text))
        result = {
            "val_accuracy": r.val_accuracy,
            "test_accuracy": r.test_accuracy,
            "status": r.status,
            "wall_time_s": r.wall_time_s,
        }
        if "result" in kept:
            path = folder / retrained_name(arch_text, epochs)
            _keep(reward, arch_text, kept["result"], result, spec, path)
            result["checkpoint"] = str(path)
        store.record_retrained(arch_text, epochs, result)
        results.append({"architecture": arch_text, **result})
    return results


def retrained_name(architecture: str, epochs: int) -> str:
    """The file name of a retrained model in ``RUN/retrained/`` (stable while the ranking
    changes: a hash of the architecture)."""
    digest = hashlib.sha1(architecture.encode()).hexdigest()[:12]
    return f"{digest}-{epochs}ep.pt"


def _keep(reward: Any, arch: str, trained: Any, result: dict, spec: Any, path: Path) -> None:
    """Save a retrained model as a ``metaqnn train`` checkpoint (``evaluate``, ``export``)."""
    data = reward.dataset
    save_checkpoint(
        path, architecture=Architecture.parse(arch), net_config=reward.net_config,
        train_config=reward.train_config, dataset=data.name, input_shape=data.spec.input_shape,
        state_dict=trained.state_dict(),
        metrics={**{k: v for k, v in result.items() if v is not None},
                 "normalization": {"mean": list(data.mean), "std": list(data.std)}},
        split={"seed": spec.seed, "val_size": len(data.val)},
    )  # fmt: skip
