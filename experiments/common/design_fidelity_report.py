"""The ``design_fidelity`` experiment's statistics and report: each proxy's rank statistics
against the final-width truth, the recommendation computed from them (the cheapest trained
proxy that clears the zero-training floor and is not significantly worse than the best), the
markdown tables and the scatter figures."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.common.proxies import ci
from metaqnn.evaluation.correlation import CorrelationResult, plot_scatter, rank_correlation
from metaqnn.markdown import markdown_table

#: Proxy kinds: the GTN reward, a real-data proxy, and the zero-training floor.
KINDS = ("gtn", "real", "zero")


@dataclass(frozen=True)
class ProxyScores:
    """One proxy's estimate of every architecture, with what it cost."""

    name: str
    """Its label in tables and figures."""
    kind: str
    """One of :data:`KINDS`."""
    values: list[float]
    """Its estimate per architecture (higher is better)."""
    cpu_s: list[float]
    """CPU seconds per architecture (this process, all its threads)."""
    wall_s: list[float]
    """Wall seconds per architecture."""
    detail: str
    """What it does, in a few words (steps, width)."""
    width_divisor: int | None = None
    """The width it scores at (the space's widths divided by this); None for no training."""

    @classmethod
    def from_rows(cls, name: str, kind: str, rows: Sequence[dict[str, Any]], detail: str,
                  width_divisor: int | None) -> ProxyScores:  # fmt: skip
        """A proxy from memoised units: each row's ``value``, ``cpu_s`` and ``wall_s``."""
        return cls(name, kind, [float(r["value"]) for r in rows], [r["cpu_s"] for r in rows],
                   [r["wall_s"] for r in rows], detail, width_divisor)  # fmt: skip

    @property
    def mean_cpu_s(self) -> float:
        """Mean CPU seconds per architecture."""
        return statistics.mean(self.cpu_s)

    @property
    def mean_wall_s(self) -> float:
        """Mean wall seconds per architecture."""
        return statistics.mean(self.wall_s)


def zero_training_proxies(rows: Sequence[dict[str, Any]]) -> list[ProxyScores]:
    """The zero-training floor from memoised units: ``parameters`` and ``flops`` per
    architecture, each with its ``[wall, CPU]`` seconds (``parameters_s``, ``flops_s``)."""
    return [ProxyScores(f"{label} (final width)", "zero", [float(z[key]) for z in rows],
                        [z[f"{key}_s"][1] for z in rows], [z[f"{key}_s"][0] for z in rows],
                        "no training")
            for key, label in (("parameters", "parameters"), ("flops", "FLOPs"))]  # fmt: skip


def correlate(proxies: Sequence[ProxyScores], truth: Sequence[float], *, ks: Sequence[int],
              resamples: int) -> dict[str, CorrelationResult]:  # fmt: skip
    """Each proxy's rank statistics against ``truth``, bootstrap seed 0 (the same resamples of
    architectures for every proxy)."""
    return {p.name: rank_correlation(p.values, truth, ks=tuple(ks), resamples=resamples, seed=0)
            for p in proxies}  # fmt: skip


def recommend(proxies: Sequence[ProxyScores], stats: dict[str, CorrelationResult],
              dataset: str) -> dict[str, Any]:  # fmt: skip
    """The proxy the numbers recommend for ``dataset``'s search.

    The floor is the best Spearman of the zero-training proxies. Of the trained proxies whose
    Spearman is above it, the best one's bootstrap interval marks the proxies not significantly
    worse; the cheapest of those (mean CPU seconds) is recommended. None clear the floor: no
    trained proxy is recommended.

    Returns:
        ``proxy`` (its name or None), ``kind``, ``width_divisor``, ``spearman``, ``cpu_s``,
        ``floor`` and ``floor_proxy``, ``best`` (the best trained proxy above the floor),
        ``clears_interval`` (the recommended proxy's interval lies above the floor) and
        ``line`` (one sentence).
    """
    rho = {p.name: stats[p.name].spearman.value for p in proxies}
    zero = [p for p in proxies if p.kind == "zero" and math.isfinite(rho[p.name])]
    floor_p = max(zero, key=lambda p: rho[p.name]) if zero else None
    floor = rho[floor_p.name] if floor_p else -1.0
    floor_text = (f"the zero-training floor ({floor_p.name}, Spearman {floor:.3f})" if floor_p
                  else "no zero-training floor (none defined)")  # fmt: skip
    clear = [p for p in proxies if p.kind != "zero" and math.isfinite(rho[p.name])
             and rho[p.name] > floor]  # fmt: skip
    out: dict[str, Any] = {"floor": floor if floor_p else None,
                           "floor_proxy": floor_p.name if floor_p else None}  # fmt: skip
    if not clear:
        return out | {
            "proxy": None, "kind": None, "width_divisor": None, "spearman": None,
            "cpu_s": None, "best": None, "clears_interval": False,
            "line": f"For {dataset}, no trained proxy clears {floor_text}: none is recommended "
                    "on these numbers (a search would rank no better than counting).",
        }  # fmt: skip
    best = max(clear, key=lambda p: rho[p.name])
    near = [p for p in clear if rho[p.name] >= stats[best.name].spearman.low]
    pick = min(near, key=lambda p: p.mean_cpu_s)
    s = stats[pick.name].spearman
    above = bool(s.low > floor)
    width = f" at widths / {pick.width_divisor}" if pick.width_divisor else ""
    line = (
        f"Recommended proxy for {dataset}: {pick.name}{width}, Spearman {ci(s)} at "
        f"{pick.mean_cpu_s:.2f} CPU s per architecture; it clears {floor_text}"
        f"{' with its whole interval' if above else ' (its interval reaches below the floor)'}"
        + ("" if pick is best else f"; the best trained proxy, {best.name} (Spearman "
           f"{rho[best.name]:.3f}, {best.mean_cpu_s:.2f} CPU s), is not significantly better")
        + "."
    )  # fmt: skip
    return out | {"proxy": pick.name, "kind": pick.kind, "width_divisor": pick.width_divisor,
                  "spearman": s.value, "cpu_s": pick.mean_cpu_s, "best": best.name,
                  "clears_interval": above, "line": line}  # fmt: skip


def proxy_rows(proxies: Sequence[ProxyScores], stats: dict[str, CorrelationResult],
               floor: float | None) -> list[dict[str, Any]]:  # fmt: skip
    """One plain-JSON row per proxy: its kind, width, costs and every statistic."""
    return [{"name": p.name, "kind": p.kind, "detail": p.detail, "width_divisor": p.width_divisor,
             "mean_cpu_s": p.mean_cpu_s, "mean_wall_s": p.mean_wall_s,
             "clears_floor": p.kind != "zero" and floor is not None
             and stats[p.name].spearman.value > floor,
             **stats[p.name].to_dict()} for p in proxies]  # fmt: skip


def proxy_table(proxies: Sequence[ProxyScores], stats: dict[str, CorrelationResult],
                ks: Sequence[int], floor: float | None) -> str:  # fmt: skip
    """The headline markdown table: one row per proxy."""
    gtn = [p for p in proxies if p.kind == "gtn"]
    unit = gtn[0].mean_cpu_s if gtn else None
    head = ["proxy", "what it runs", "CPU s / arch", "wall s / arch",
            *(["CPU cost vs first GTN"] if unit else []), "Spearman [95% CI]",
            "Kendall [95% CI]", "Spearman, top half", *(f"top-{k} overlap" for k in ks),
            "clears the floor"]  # fmt: skip
    rows = []
    for p in proxies:
        s = stats[p.name]
        clears = "floor" if p.kind == "zero" else (
            "-" if floor is None else ("yes" if s.spearman.value > floor else "no"))  # fmt: skip
        rows.append([
            p.name, p.detail, f"{p.mean_cpu_s:.3g}", f"{p.mean_wall_s:.3g}",
            *([f"{p.mean_cpu_s / unit:.2g}x"] if unit else []), ci(s.spearman), ci(s.kendall),
            f"{s.spearman_top_half.value:.3f}",
            *(ci(s.top_k[k]) if k in s.top_k else "-" for k in ks), clears,
        ])  # fmt: skip
    return markdown_table(head, rows)


def scatter_figures(proxies: Sequence[ProxyScores], truth: Sequence[float],
                    stats: dict[str, CorrelationResult], out: Path,
                    truth_name: str) -> list[str]:  # fmt: skip
    """One scatter figure per proxy against the truth (zero-training proxies on a log10 axis);
    returns the file names written in ``out``."""
    names = []
    for p in proxies:
        slug = "".join(c if c.isalnum() else "_" for c in p.name.lower()).strip("_")
        name = f"scatter_{slug}.png"
        log = p.kind == "zero"
        values = [math.log10(max(v, 1.0)) for v in p.values] if log else p.values
        plot_scatter(values, truth, out / name, result=stats[p.name],
                     names=(f"log10 {p.name}" if log else p.name, truth_name))  # fmt: skip
        names.append(name)
    return names


def architecture_table(rows: Sequence[dict[str, Any]], proxies: Sequence[ProxyScores],
                       reference: str) -> str:  # fmt: skip
    """Per architecture: stratum, depth, FLOPs, families, truth, every proxy."""
    head = ["#", "stratum (depth, FLOPs)", "depth", "MFLOPs (final)", "families",
            "truth val", "truth test", *(p.name for p in proxies),
            "architecture (search width)"]  # fmt: skip
    table = [[str(i + 1), f"{r['stratum'][0]}, {r['stratum'][1]}", str(r["depth"]),
              f"{r['final_mflops']:.2f}", ", ".join(r["families"]), f"{r['truth_val']:.4f}",
              f"{r['truth_test']:.4f}",
              *(f"{p.values[i]:.4g}" for p in proxies), f"`{r['architecture']}`"]
             for i, r in enumerate(rows)]  # fmt: skip
    return f"Reference: truth {reference}.\n\n" + markdown_table(head, table)


def strata_table(strata: Sequence[tuple[int, int]], depths: Sequence[int],
                 flops: Sequence[float]) -> str:  # fmt: skip
    """Per non-empty stratum of the chosen architectures: its depth and FLOPs ranges and how
    many were chosen from it."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, key in enumerate(strata):
        groups.setdefault(tuple(key), []).append(i)
    rows = [[f"{d}, {f}", f"{min(depths[i] for i in idx)}-{max(depths[i] for i in idx)}",
             f"{min(flops[i] for i in idx) / 1e6:.2f}-{max(flops[i] for i in idx) / 1e6:.2f}",
             str(len(idx))] for (d, f), idx in sorted(groups.items())]  # fmt: skip
    return markdown_table(["stratum (depth bin, FLOPs bin)", "depths", "MFLOPs at final width",
                           "chosen"], rows)  # fmt: skip
