"""Plot a GTN meta-training run: learner accuracy on the real meta-batch against outer step.

A figure tool (not an experiment: no config, no results folder)::

    python -m experiments.common.plot_gtn_history RUN_DIR --out experiments/figures/NAME.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from gtn.meta import load_meta_checkpoint


def main() -> None:
    """Parse the command line, read the run's history, write the PNG."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="GTN run folder or checkpoint")
    p.add_argument("--out", required=True, help="PNG path")
    p.add_argument("--window", type=int, default=10, help="rolling-mean window")
    args = p.parse_args()
    state = load_meta_checkpoint(args.run)
    history, extra = state["history"], state["extra"]
    steps = np.array([r["step"] for r in history])
    acc = np.array([r["accuracy"] for r in history])
    lr = np.array([r["outer_lr"] for r in history])
    w = min(args.window, len(acc))
    rolling = np.convolve(acc, np.ones(w) / w, mode="valid")
    fig, (ax, ax_lr) = plt.subplots(2, 1, figsize=(7, 5), sharex=True, height_ratios=(3, 1))
    ax.plot(steps, acc, ".", alpha=0.3, label="one outer step (fresh learner)")
    ax.plot(steps[w - 1 :], rolling, label=f"rolling mean of {w}")
    ax.set_ylabel("learner accuracy on real meta-batch")
    ax.set_title(
        f"GTN meta-training on {extra.get('dataset')}, learner {extra.get('learner')}",
        fontsize=8,
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax_lr.plot(steps, lr)
    ax_lr.set_ylabel("outer lr")
    ax_lr.set_xlabel("outer step")
    ax_lr.grid(alpha=0.3)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
