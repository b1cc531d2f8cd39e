"""How well a cheap reward ranks architectures like a reference reward does: Spearman's rho,
Kendall's tau, Spearman over the top half (as the GTN paper reports) and top-k overlap, each
with a seeded percentile-bootstrap confidence interval; reading reward pairs from CSV or JSON;
the scatter plot.

Higher rewards are better throughout (accuracies).
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from metaqnn.errors import ConfigError

Statistic = Callable[[np.ndarray, np.ndarray], float]
"""``statistic(cheap, reference) -> value`` over paired 1-D arrays."""


def _pair(cheap: Sequence[float], reference: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(cheap, dtype=float)
    b = np.asarray(reference, dtype=float)
    if a.ndim != 1 or a.shape != b.shape:
        raise ConfigError(f"need two equally long 1-D reward lists, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ConfigError("rewards must be finite numbers (drop failed evaluations first)")
    return a, b


def _quiet(fn: Callable[..., Any], *args: Any) -> float:
    """``fn(*args)`` as a float, with scipy's constant-input warnings silenced (NaN results)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(*args))


def spearman(cheap: Sequence[float], reference: Sequence[float]) -> float:
    """Spearman's rank correlation (ties get average ranks); NaN if a list is constant."""
    a, b = _pair(cheap, reference)
    return _quiet(lambda: stats.spearmanr(a, b).statistic)


def kendall(cheap: Sequence[float], reference: Sequence[float]) -> float:
    """Kendall's tau-b; NaN if a list is constant."""
    a, b = _pair(cheap, reference)
    return _quiet(lambda: stats.kendalltau(a, b).statistic)


def _top(values: np.ndarray, k: int) -> set[int]:
    """Indices of the ``k`` largest values (ties broken by position, stably)."""
    return set(np.argsort(-values, kind="stable")[:k].tolist())


def top_k_overlap(cheap: Sequence[float], reference: Sequence[float], k: int) -> float:
    """Share of the reference's top ``k`` that are also in the cheap reward's top ``k``.

    Raises:
        ConfigError: If ``k`` is not in ``1 .. len(rewards)``.
    """
    a, b = _pair(cheap, reference)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= len(a):
        raise ConfigError(f"top-k needs k in 1..{len(a)}, got {k!r}")
    return len(_top(a, k) & _top(b, k)) / k


def spearman_top_half(cheap: Sequence[float], reference: Sequence[float]) -> float:
    """Spearman's rho over the architectures in the reference's top half (GTN's "top 50%")."""
    a, b = _pair(cheap, reference)
    keep = sorted(_top(b, max(2, math.ceil(len(b) / 2))))
    return spearman(a[keep], b[keep])


def bootstrap_ci(
    statistic: Statistic,
    cheap: Sequence[float],
    reference: Sequence[float],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of a paired statistic.

    Architectures are resampled with replacement ``resamples`` times from a generator seeded
    with ``seed``; resamples where the statistic is undefined (NaN) are left out.

    Args:
        statistic: ``(cheap, reference) -> value``.
        cheap: Cheap rewards, one per architecture.
        reference: Reference rewards, same order.
        resamples: Bootstrap resamples.
        confidence: Coverage of the interval, in (0, 1).
        seed: Seed of the resampling.

    Returns:
        ``(low, high)``; NaNs if no resample gave a value.
    """
    a, b = _pair(cheap, reference)
    if not 0 < confidence < 1 or resamples < 1:
        raise ConfigError(f"confidence {confidence!r} must be in (0, 1) and resamples "
                          f"{resamples!r} positive")  # fmt: skip
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(a), size=(resamples, len(a)))  # (resamples, n) indices
    values = np.array([_quiet(statistic, a[idx], b[idx]) for idx in draws])  # (resamples,)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return math.nan, math.nan
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Estimate:
    """A statistic and its bootstrap confidence interval.

    Attributes:
        value: On all the architectures.
        low: Lower end of the interval.
        high: Upper end of the interval.
    """

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class CorrelationResult:
    """How a cheap reward ranks architectures against a reference reward.

    Attributes:
        n: Architectures compared.
        spearman: Spearman's rho.
        kendall: Kendall's tau-b.
        spearman_top_half: Spearman's rho over the reference's top half.
        top_k: k -> share of the reference's top k found in the cheap reward's top k.
        confidence: Coverage of the intervals.
        resamples: Bootstrap resamples.
        seed: Seed of the resampling.
    """

    n: int
    spearman: Estimate
    kendall: Estimate
    spearman_top_half: Estimate
    top_k: dict[int, Estimate]
    confidence: float
    resamples: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        out = asdict(self)
        out["top_k"] = {str(k): v for k, v in out["top_k"].items()}
        return out


def rank_correlation(
    cheap: Sequence[float],
    reference: Sequence[float],
    *,
    ks: Sequence[int] = (5, 10),
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> CorrelationResult:
    """Every rank statistic with its bootstrap interval.

    Args:
        cheap: Cheap rewards (e.g. GTN accuracy), one per architecture.
        reference: Reference rewards (e.g. accuracy after full training), same order.
        ks: The k of the top-k overlaps; those above the number of architectures are skipped.
        resamples: Bootstrap resamples.
        confidence: Coverage of the intervals.
        seed: Seed of the resampling (the same seed gives the same intervals).

    Returns:
        The :class:`CorrelationResult`.

    Raises:
        ConfigError: With fewer than 3 architectures, or non-finite rewards.
    """
    a, b = _pair(cheap, reference)
    if len(a) < 3:
        raise ConfigError(f"rank correlation needs at least 3 architectures, got {len(a)}")

    def estimate(statistic: Statistic) -> Estimate:
        low, high = bootstrap_ci(statistic, a, b, resamples=resamples, confidence=confidence,
                                 seed=seed)  # fmt: skip
        return Estimate(statistic(a, b), low, high)

    return CorrelationResult(
        n=len(a),
        spearman=estimate(spearman),
        kendall=estimate(kendall),
        spearman_top_half=estimate(spearman_top_half),
        top_k={k: estimate(lambda x, y, k=k: top_k_overlap(x, y, k)) for k in ks if k <= len(a)},
        confidence=confidence,
        resamples=resamples,
        seed=seed,
    )


@dataclass(frozen=True)
class RewardPairs:
    """Two rewards per architecture, read from a file.

    Attributes:
        labels: One name per architecture (its architecture string, or the row number).
        cheap: The cheap reward.
        reference: The reference reward.
        dropped: Rows left out because a reward was missing or not finite.
    """

    labels: tuple[str, ...]
    cheap: tuple[float, ...]
    reference: tuple[float, ...]
    dropped: int


def _records(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV file, or of a JSON list of objects, ``{"records": [...]}`` or an object of
    equally long columns."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    text = path.read_text()
    if path.suffix.lower() == ".csv":
        return list(csv.DictReader(text.splitlines()))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: neither .csv nor valid JSON ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("records"), list):
        data = data["records"]
    if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        lengths = {len(v) for v in data.values()}
        if len(lengths) != 1:
            raise ConfigError(f"{path}: columns of different lengths {sorted(lengths)}")
        data = [dict(zip(data, row, strict=True)) for row in zip(*data.values(), strict=True)]
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise ConfigError(f"{path}: expected a list of objects or an object of columns")
    return data


def _number(value: Any) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(repr(value)) from None


def load_reward_pairs(
    path: str | Path, cheap: str, reference: str, *, label: str = "architecture"
) -> RewardPairs:
    """Read two reward columns over the same architectures from a CSV or JSON file.

    Rows where either reward is empty, null or not finite are dropped (and counted).

    Args:
        path: A ``.csv`` file with a header, or JSON (see :func:`_records`).
        cheap: Column of the cheap reward.
        reference: Column of the reference reward.
        label: Column naming each architecture (row numbers if absent).

    Returns:
        The :class:`RewardPairs`.

    Raises:
        ConfigError: For a missing file, a missing column (the message lists the columns) or a
            value that is not a number.
    """
    path = Path(path)
    rows = _records(path)
    columns = list(rows[0]) if rows else []
    for column in (cheap, reference):
        if column not in columns:
            raise ConfigError(f"{path}: no column {column!r}; columns are {columns}")
    labels, xs, ys, dropped = [], [], [], 0
    for i, row in enumerate(rows):
        try:
            x, y = _number(row.get(cheap)), _number(row.get(reference))
        except ValueError as exc:
            raise ConfigError(f"{path}: row {i + 1} holds {exc}, not a number") from None
        if not (math.isfinite(x) and math.isfinite(y)):
            dropped += 1
            continue
        labels.append(str(row.get(label, i + 1)))
        xs.append(x)
        ys.append(y)
    return RewardPairs(tuple(labels), tuple(xs), tuple(ys), dropped)


def plot_scatter(
    cheap: Sequence[float],
    reference: Sequence[float],
    path: str | Path,
    *,
    names: tuple[str, str] = ("cheap reward", "reference reward"),
    result: CorrelationResult | None = None,
) -> Path:
    """Scatter of cheap against reference reward (as in the GTN paper's NAS figure).

    Args:
        cheap: Cheap rewards.
        reference: Reference rewards, same order.
        path: PNG to write (parent folders are created).
        names: Axis labels (x: cheap, y: reference).
        result: Statistics to print in the title.

    Returns:
        The file written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(cheap, reference, s=12, alpha=0.7)
    ax.set(xlabel=names[0], ylabel=names[1])
    if result is not None:
        ax.set_title(f"n={result.n}  Spearman {result.spearman.value:.3f}  "
                     f"Kendall {result.kendall.value:.3f}", fontsize=9)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
