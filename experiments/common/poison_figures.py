"""The poisoning experiment's figures: attack success against the share of poisons and during
meta-training, and the learned poisons as an image."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch


def plot_attacks(
    rows: Sequence[dict[str, Any]],
    threats: Sequence[str],
    source: int,
    target: int,
    path: str | Path,
) -> None:
    """Two panels: attack success on the test set against the share of poisons (per threat
    model; for ``white-box`` also the label-flip baseline and no poisons), and attack success
    on the outer-objective images during meta-training (a line per attack).

    Args:
        rows: The experiment's rows (``threat``, ``count``, ``share``, ``learned_success``,
            ``flip_success``, ``clean_success``, ``val_success``).
        threats: The threat models in the order drawn.
        source: The class misclassified.
        target: The class it should become.
        path: The PNG written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    markers = {"white-box": "o-", "fixed": "s", "random": "^"}
    for threat in threats:
        mine = sorted((r for r in rows if r["threat"] == threat), key=lambda r: r["count"])
        if not mine:
            continue
        share = [100 * r["share"] for r in mine]
        left.plot(
            share,
            [statistics.fmean(r["learned_success"]) for r in mine],
            markers[threat],
            label=f"learned poisons ({threat})",
        )
        if threat == "white-box":
            left.plot(
                share,
                [statistics.fmean(r["flip_success"]) for r in mine],
                "x--",
                label="label flip (source images)",
            )
            left.plot(
                share,
                [statistics.fmean(r["clean_success"]) for r in mine],
                ":",
                color="grey",
                label="no poisons",
            )
        for r in mine:
            right.plot(r["val_success"], label=f"{threat}, {r['count']} poisons", lw=1)
    left.axhline(0.5, color="red", lw=0.8, ls="--")
    left.set(
        xlabel="poisons, % of the training set",
        ylim=(0, 1),
        ylabel=f"test {source}s classified {target}",
        title="targeted misclassification",
    )
    left.legend(fontsize=7)
    right.set(
        xlabel="outer step",
        ylabel="share on the outer-objective images",
        title="attack success during meta-training",
        ylim=(0, 1),
    )
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def poison_grid(files: Sequence[str | Path], path: str | Path) -> None:
    """The poisons saved in ``files`` (one ``(N, C, H, W)`` tensor of [0, 1] pixels each) as
    one image, a row per file, shorter rows padded with black."""
    from torchvision.utils import save_image

    images = [torch.load(f) for f in files]
    width = max(len(x) for x in images)
    padded = [torch.cat([x, torch.zeros(width - len(x), *x.shape[1:])]) for x in images]
    save_image(torch.cat(padded), path, nrow=width, pad_value=0.5)
