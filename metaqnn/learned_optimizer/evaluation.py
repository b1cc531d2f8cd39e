"""A meta-trained learned optimizer evaluated against learning-rate-tuned Adam, inner-trained
on clean and on noisy data (:func:`evaluate_run`, with the training and measurements of
:mod:`metaqnn.learned_optimizer.comparison`), and the report: per-seed rows, their summary,
paired differences by seed, markdown tables and JSON values (:class:`RunEvaluation`).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from metaqnn.core.data import Dataset
from metaqnn.learned_optimizer.checkpoints import es_config_from, lopt_config_from
from metaqnn.learned_optimizer.comparison import ComparisonConfig, adam, compare, learned, tune_adam
from metaqnn.learned_optimizer.optimizer import init_theta
from metaqnn.learned_optimizer.task import InnerModelConfig, model_factory
from metaqnn.markdown import markdown_table


def summarize(rows: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Key -> (mean, standard deviation over seeds) of numeric row values."""
    keys = [k for k in rows[0] if k != "seed"]
    out = {}
    for key in keys:
        values = [float(r[key]) for r in rows]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        out[key] = (statistics.fmean(values), spread)
    return out


@dataclass(frozen=True)
class PairedDifference:
    """``a - b`` of one measurement over the seeds both were trained on (same initialisation
    and batches per seed), for a paired comparison of two optimizers."""

    mean: float
    std: float
    """Standard deviation of the per-seed differences."""
    sem: float
    """Standard error of the mean difference (``std / sqrt(n)``)."""
    wins: int
    """Seeds on which ``a`` is lower."""
    n: int


def paired_difference(
    a: list[dict[str, Any]], b: list[dict[str, Any]], key: str = "val_noisy_loss"
) -> PairedDifference:
    """The per-seed differences ``a[key] - b[key]`` of two optimizers' rows (matched by
    ``seed``).

    Raises:
        ValueError: The rows do not cover the same seeds.
    """
    by_seed = {r["seed"]: float(r[key]) for r in b}
    if sorted(by_seed) != sorted(r["seed"] for r in a):
        raise ValueError(f"paired_difference: seeds {sorted(r['seed'] for r in a)} and "
                         f"{sorted(by_seed)} differ")  # fmt: skip
    diffs = [float(r[key]) - by_seed[r["seed"]] for r in a]
    std = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
    return PairedDifference(statistics.fmean(diffs), std, std / math.sqrt(len(diffs)),
                            sum(d < 0 for d in diffs), len(diffs))  # fmt: skip


# ------------------------------------------------------------------ a run's evaluation
#: The optimizers of the comparison, in table order: name -> description.
METHODS = {
    "learned": "learned optimizer, clean training",
    "adam_clean": "Adam (tuned lr), clean training",
    "adam_noisy": "Adam (tuned lr), noisy training",
}


@dataclass
class RunEvaluation:
    """The comparison of a meta-trained optimizer with tuned Adam.

    Attributes:
        config: How they were compared.
        adam_lr: ``adam_clean`` / ``adam_noisy`` -> the tuned learning rate.
        adam_scores: The same keys -> lr -> mean noisy-validation loss on the tuning seeds.
        rows: Method (a key of :data:`METHODS`) -> one measured row per evaluation seed.
        seconds: Wall-clock seconds of tuning and of the comparison.
    """

    config: ComparisonConfig
    adam_lr: dict[str, float]
    adam_scores: dict[str, dict[float, float]]
    rows: dict[str, list[dict[str, Any]]]
    seconds: dict[str, float]

    def summary(self) -> dict[str, dict[str, tuple[float, float]]]:
        """Method -> key -> (mean, std over seeds)."""
        return {name: summarize(rows) for name, rows in self.rows.items()}

    def paired(self, key: str = "val_noisy_loss") -> dict[str, PairedDifference]:
        """Other method -> the learned optimizer's paired difference to it on ``key``."""
        if "learned" not in self.rows:
            return {}
        return {n: paired_difference(self.rows["learned"], rows, key)
                for n, rows in self.rows.items() if n != "learned"}  # fmt: skip

    def markdown(self) -> str:
        """Tables: the meta-objective, test loss and accuracy under noise, corruptions."""
        s, c = self.summary(), self.config
        label = {
            name: METHODS[name] + (f" {self.adam_lr[name]:g}" if name in self.adam_lr else "")
            for name in self.rows
        }
        fmt = lambda v, d=4: f"{v[0]:.{d}f} ± {v[1]:.{d}f}"  # noqa: E731
        head = f"{len(c.eval_seeds)} models each, {c.steps} steps of {c.batch_size}"
        curve = all("val_noisy_curve_mean" in s[n] for n in self.rows)
        lines = [
            f"Meta-objective: validation loss under pixel noise {c.noise:g} ({head}; mean ± std)",
            "",
            markdown_table(
                ["optimizer", f"noisy val loss ({c.noise:g})", "clean val loss", "train loss"]
                + ([f"noisy val loss, mean every {c.curve_every} steps"] if curve else []),
                [
                    [
                        label[n],
                        fmt(s[n]["val_noisy_loss"]),
                        fmt(s[n]["val_clean_loss"]),
                        fmt(s[n]["final_train_loss"]),
                    ]
                    + ([fmt(s[n]["val_noisy_curve_mean"])] if curve else [])
                    for n in self.rows
                ],
            ),
            "",
            *self._paired_lines(label),
            "Test set under pixel noise: loss / accuracy",
            "",
            markdown_table(
                ["optimizer", *(f"sigma {x:g}" for x in c.test_noise)],
                [
                    [
                        label[n],
                        *(
                            f"{s[n][f'test_loss@{x:g}'][0]:.3f} / "
                            f"{100 * s[n][f'test_acc@{x:g}'][0]:.1f} %"
                            for x in c.test_noise
                        ),
                    ]
                    for n in self.rows
                ],
            ),
            "",
            "Held-out corruptions: test accuracy %, mean over severities 1-5",
            "",
            markdown_table(
                ["corruption", *(label[n] for n in self.rows)],
                [
                    [name, *(f"{100 * s[n][f'corruption/{name}'][0]:.1f}" for n in self.rows)]
                    for name in (*c.corruptions, "mean")
                ],
            ),
        ]
        for name, scores in self.adam_scores.items():
            grid = ", ".join(f"{lr:g}: {v:.4f}" for lr, v in scores.items())
            lines += ["", f"{METHODS[name]}: noisy val loss per lr on the tuning seeds: {grid}"]
        return "\n".join(lines)

    def _paired_lines(self, label: dict[str, str]) -> list[str]:
        """The paired table of the noisy validation loss (empty without a learned row)."""
        paired = self.paired()
        if not paired:
            return []
        rows = [[f"learned - {label[n]}", f"{d.mean:+.4f} ± {d.std:.4f}", f"{d.sem:.4f}",
                 f"{d.wins} of {d.n}"] for n, d in paired.items()]  # fmt: skip
        return [
            "Paired by seed (each seed: the same initialisation and batches for every "
            "optimizer): difference of the noisy val loss, learned minus the other",
            "",
            markdown_table(["difference", "mean ± std", "sem", "learned lower on"], rows),
            "",
        ]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunEvaluation:
        """The evaluation of :meth:`to_dict`'s values."""
        config = dict(values["config"])
        for key in ("adam_lrs", "tune_seeds", "eval_seeds", "test_noise", "corruptions"):
            config[key] = tuple(config[key])
        scores = {k: {float(lr): v for lr, v in d.items()} for k, d in
                  values["adam_scores"].items()}  # fmt: skip
        return cls(ComparisonConfig(**config), dict(values["adam_lr"]), scores,
                   values["rows"], dict(values["seconds"]))  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {
            "config": asdict(self.config),
            "adam_lr": self.adam_lr,
            "adam_scores": {
                k: {str(lr): v for lr, v in d.items()} for k, d in self.adam_scores.items()
            },
            "summary": {n: {k: list(v) for k, v in d.items()} for n, d in self.summary().items()},
            "paired_val_noisy_loss": {n: asdict(d) for n, d in self.paired().items()},
            "rows": self.rows,
            "seconds": self.seconds,
        }


def evaluate_run(
    state: dict[str, Any],
    data: Dataset,
    config: ComparisonConfig,
    device: torch.device | str = "cpu",
    *,
    make_model: Callable[[int], nn.Module] | None = None,
    initial: bool = False,
) -> RunEvaluation:
    """Compare a meta-trained optimizer (a checkpoint dict of
    :mod:`metaqnn.learned_optimizer.es`) with Adam tuned on the same noisy-validation loss, trained
    on clean and on noisy images.

    Args:
        state: The checkpoint dict.
        data: Its dataset (same validation split as meta-training).
        config: Steps, seeds, measurements.
        device: Where models train.
        make_model: Seed -> model (default: the run's inner model).
        initial: Evaluate the weights the run started from instead of its meta-trained ones
            (what ES added).
    """
    extra = state["extra"]
    if make_model is None:
        inner = InnerModelConfig(tuple(extra["channels"]), tuple(extra["strides"]))
        make_model = model_factory(data, inner, device)
    t0 = time.perf_counter()
    adam_lr, adam_scores = {}, {}
    for name, noisy in (("adam_clean", False), ("adam_noisy", True)):
        adam_lr[name], adam_scores[name] = tune_adam(data, make_model, config, noisy_training=noisy)
    t1 = time.perf_counter()
    theta = state["theta"]
    if initial:
        es = es_config_from(state)
        theta = init_theta(lopt_config_from(state), seed=es.seed, kind=es.theta_init)
    theta = {k: v.to(device) for k, v in theta.items()}
    optimizers = {
        "learned": (learned(theta, lopt_config_from(state)), False),
        "adam_clean": (adam(adam_lr["adam_clean"]), False),
        "adam_noisy": (adam(adam_lr["adam_noisy"]), True),
    }
    rows = compare(data, make_model, optimizers, config)
    seconds = {"tune_adam": t1 - t0, "compare": time.perf_counter() - t1}
    return RunEvaluation(config, adam_lr, adam_scores, rows, seconds)
