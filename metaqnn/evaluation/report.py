"""Writing evaluation results: markdown tables, PNG figures (matplotlib, Agg backend) and
TensorBoard scalars under ``eval/``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from metaqnn.evaluation.attacks import ATTACKS
from metaqnn.evaluation.corruption_levels import LEVEL_SOURCES
from metaqnn.evaluation.corruptions import SEVERITIES
from metaqnn.evaluation.robustness import RobustnessReport
from metaqnn.markdown import markdown_table

#: A rate from fewer images than this is flagged as rough, in the table and the figure.
FEW = 30


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}"


def _nanmean(values: list[float]) -> float:
    measured = [v for v in values if not math.isnan(v)]
    return sum(measured) / len(measured) if measured else math.nan


def _idle(accuracies: tuple[float, ...]) -> str:
    """The severities that were not measured (NaN), e.g. ``1, 2``."""
    return ", ".join(str(s) for s, a in zip(SEVERITIES, accuracies, strict=True) if math.isnan(a))


def _eps(value: float) -> str:
    levels = 255 * value
    return f"{round(levels)}/255" if abs(levels - round(levels)) < 1e-6 else f"{value:.4g}"


def robustness_markdown(report: RobustnessReport, title: str = "Robustness report") -> str:
    """The report as markdown: clean accuracy, sweeps, attacks, corruptions, destruction."""
    cfg = report.config
    parts = [
        f"# {title}",
        f"Clean accuracy {_pct(report.clean_accuracy)} % on {report.n_images} images; attacks on "
        f"the first {report.n_attack_images}. Accuracies in %.",
        "## Additive Gaussian noise clip(x + beta z)",
        markdown_table(["beta", *map(str, report.noise.strengths)],
                       [["accuracy", *map(_pct, report.noise.accuracies)]]),
        "## Gaussian blur of standard deviation beta (pixels)",
        markdown_table(["beta", *map(str, report.blur.strengths)],
                       [["accuracy", *map(_pct, report.blur.accuracies)]]),
    ]  # fmt: skip
    if report.attacks:
        epsilons = next(iter(report.attacks.values())).strengths
        parts += [
            "## Attacks: accuracy against epsilon (L-infinity, pixels in [0, 1])",
            markdown_table(
                ["attack", *map(_eps, epsilons)],
                [[ATTACKS[name].label, *map(_pct, curve.accuracies)]
                 for name, curve in report.attacks.items()],
            ),
        ]  # fmt: skip
    if report.corruptions:
        rows = [[name, *map(_pct, c.accuracies), _pct(c.mean)]
                for name, c in report.corruptions.items()]  # fmt: skip
        means = [_nanmean([c.accuracies[i] for c in report.corruptions.values()])
                 for i in range(len(SEVERITIES))]  # fmt: skip
        rows.append(["**mean**", *map(_pct, means), _pct(report.mean_corruption_accuracy)])
        idle = [f"{name} {_idle(c.accuracies)}" for name, c in report.corruptions.items()
                if any(map(math.isnan, c.accuracies))]  # fmt: skip
        levels = LEVEL_SOURCES.get(cfg.corruption_kind or "", "the images' own")
        parts += [
            "## Corruptions: accuracy against severity",
            f"Severity levels: {levels} (`--corruption-kind {cfg.corruption_kind}`).",
            *(
                [f"n/a: the severity leaves images of this size unchanged ({'; '.join(idle)})."]
                if idle
                else []
            ),
            markdown_table(["corruption", *map(str, SEVERITIES), "mean"], rows),
        ]
    if report.destruction:
        names = list(report.destruction)
        parts += [
            f"## Destruction rates of adversarial examples (epsilon {_eps(cfg.destruction_epsilon)}"
            ", mean over severities 1-5, in %)",
            "Share of images right when clean and wrong when adversarial that a transformation "
            "makes right again (Kurakin et al. 2016). Fooled images: "
            + ", ".join(f"{ATTACKS[n].label} {report.destruction[n].fooled}" for n in names)
            + ".",
            *(["Few fooled images: these rates are rough (each image moves a rate by "
               f"{100 / max(1, min(report.destruction[n].fooled for n in names)):.0f} points)."]
              if min(report.destruction[n].fooled for n in names) < FEW else []),
            markdown_table(
                ["transformation",
                 *(f"{ATTACKS[n].label} (n = {report.destruction[n].fooled})" for n in names)],
                [[t, *(_pct(report.destruction[n].mean(t)) for n in names)]
                 for t in cfg.destruction_transforms],
            ),
        ]  # fmt: skip
    parts += [
        "## Timings",
        markdown_table(["section", "seconds"],
                       [[k, f"{v:.1f}"] for k, v in report.timings.items()]),
    ]  # fmt: skip
    return "\n\n".join(parts) + "\n"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_robustness(report: RobustnessReport, out_dir: str | Path) -> list[Path]:
    """Write the report's figures as PNGs: accuracy curves, destruction rates, examples.

    Args:
        report: The measurements.
        out_dir: Folder to write into (created).

    Returns:
        The files written.
    """
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
        written.append(out / name)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, curve, label in ((axes[0], report.noise, "Gaussian noise beta"),
                             (axes[1], report.blur, "Gaussian blur beta (pixels)")):  # fmt: skip
        ax.plot(curve.strengths, curve.accuracies, marker="o")
        ax.set(xlabel=label, ylabel="accuracy", ylim=(0, 1.02))
    for name, curve in report.attacks.items():
        axes[2].plot([255 * e for e in curve.strengths], curve.accuracies, marker="o",
                     label=ATTACKS[name].label)  # fmt: skip
    axes[2].set(xlabel="epsilon (x 1/255)", ylabel="accuracy", ylim=(0, 1.02))
    if report.attacks:
        axes[2].legend(fontsize=8)
    save(fig, "accuracy_curves.png")

    if report.corruptions:
        fig, ax = plt.subplots(figsize=(8, 5))
        colours = plt.get_cmap("tab20").colors  # 20 colours; styles tell repeats apart
        styles = ("-", "--", ":", "-.")
        for i, (name, curve) in enumerate(report.corruptions.items()):
            ax.plot(curve.strengths, curve.accuracies, marker=".", label=name,
                    color=colours[i % len(colours)],
                    linestyle=styles[i // len(colours) % len(styles)])  # fmt: skip
        ax.set(xlabel="severity", ylabel="accuracy", xticks=list(SEVERITIES), ylim=(0, 1.02))
        ax.legend(fontsize=7, ncol=3)
        save(fig, "corruptions.png")

    if report.destruction:
        fig, ax = plt.subplots(figsize=(8, 4))
        transforms = report.config.destruction_transforms
        width = 0.8 / len(report.destruction)
        for i, (name, d) in enumerate(report.destruction.items()):
            ax.bar([t + i * width for t in range(len(transforms))],
                   [d.mean(t) for t in transforms], width,
                   label=f"{ATTACKS[name].label} (n = {d.fooled})")  # fmt: skip
        ax.set_xticks([t + 0.4 - width / 2 for t in range(len(transforms))], transforms)
        fewest = min(d.fooled for d in report.destruction.values())
        rough = "; few images, rough rates" if fewest < FEW else ""
        ax.set(ylabel="destruction rate", ylim=(0, 1), title=f"rates over n fooled images{rough}")
        ax.legend(fontsize=8)
        save(fig, "destruction_rates.png")

    for prefix, name in (("attack/", "adversarial_examples.png"),
                         ("corruption/", "corrupted_examples.png")):  # fmt: skip
        keys = ["clean", *(k for k in report.examples if k.startswith(prefix))]
        if len(keys) > 1 and len(report.examples["clean"]):
            save(_example_grid(plt, report.examples, keys), name)
    return written


def _example_grid(plt: Any, examples: dict[str, torch.Tensor], keys: list[str]) -> Any:
    """One row per key, one column per image, titled with label -> prediction."""
    k = len(examples["clean"])
    fig, axes = plt.subplots(len(keys), k, figsize=(1.3 * k, 1.4 * len(keys)), squeeze=False)
    for row, key in enumerate(keys):
        for col in range(k):
            image = examples[key][col].permute(1, 2, 0).clamp(0, 1).numpy()  # (H, W, C)
            ax = axes[row][col]
            ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray",
                      vmin=0, vmax=1)  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            pred = int(examples[f"pred/{key}"][col])
            wrong = pred != int(examples["labels"][col])
            ax.set_title(str(pred), fontsize=7, color="red" if wrong else "black")
            if col == 0:
                ax.set_ylabel(key.split("/")[-1], fontsize=7)
    return fig


def write_scalars(report: RobustnessReport, log_dir: str | Path) -> Path:
    """Write the report as TensorBoard scalars under ``eval/`` and its markdown as text.

    Steps: the sweep index for noise and blur (strengths in the markdown), epsilon in levels
    of 1/255 for attacks, severity for corruptions and destruction rates.

    Args:
        report: The measurements.
        log_dir: TensorBoard log folder.

    Returns:
        The log folder.
    """
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(log_dir)) as writer:
        writer.add_scalar("eval/clean_accuracy", report.clean_accuracy, 0)
        writer.add_scalar("eval/mean_corruption_accuracy", report.mean_corruption_accuracy, 0)
        for label, curve in (("noise", report.noise), ("blur", report.blur)):
            for i, acc in enumerate(curve.accuracies):
                writer.add_scalar(f"eval/{label}/accuracy", acc, i)
        for name, curve in report.attacks.items():
            for eps, acc in zip(curve.strengths, curve.accuracies, strict=True):
                writer.add_scalar(f"eval/attack/{name}/accuracy", acc, round(255 * eps))
        for name, curve in report.corruptions.items():
            for severity, acc in zip(SEVERITIES, curve.accuracies, strict=True):
                writer.add_scalar(f"eval/corruption/{name}/accuracy", acc, severity)
        for name, d in report.destruction.items():
            for transform, rates in d.rates.items():
                for severity, rate in zip(SEVERITIES, rates, strict=True):
                    writer.add_scalar(f"eval/destruction/{name}/{transform}", rate, severity)
        writer.add_text("eval/report", robustness_markdown(report), 0)
    return Path(log_dir)
