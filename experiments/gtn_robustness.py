"""GTN robustness: noise, blur, FGSM and L-BFGS-style curves of GTN-trained and real-data learners.

The GTN robustness study found GTN-trained MNIST models less robust than real-data ones. This
experiment trains one learner type (``learner``, at ``width_divisor``) in three ways per seed:

- ``gtn_full``: all of the teacher's curriculum steps,
- ``gtn_early``: the first ``early_steps`` steps of the same run,
- ``real``: ``real_epochs`` epoch(s) of real data (MetaQNN's recipe, no restarts; the same
  initialisation),

and measures test accuracy against the strength beta of the study's four perturbations (see
:data:`PERTURBATIONS`), using :mod:`metaqnn.evaluation` on [0, 1] pixels. One figure holds
four panels (accuracy against beta, a line per kind of training, the band one standard
deviation over seeds). Each (seed, kind of training) is a memoised unit, so a killed run
resumes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from experiments.common.learner_zoo import (
    LEARNER_TYPES,
    Clock,
    LoadedTeacher,
    cpu_footer,
    fmt_mean_std,
    head,
    learner_architecture,
    load_teacher,
    mean_std,
    teach,
    train_real,
)
from experiments.harness import REPO_ROOT, Context, Outcome, main
from metaqnn.errors import ConfigError
from metaqnn.evaluation import AttackConfig, PixelModel, accuracy, run_attack
from metaqnn.evaluation.corruptions import gaussian_blur, gaussian_noise
from metaqnn.markdown import markdown_table
from metaqnn.teacher.run import TeacherRun

NAME = "gtn_robustness"


@dataclass(frozen=True)
class Config:
    """What the robustness study measures."""

    teacher: str
    """A teacher run folder (relative to the repository root); empty: a folder
    under the scratch folder (quick mode trains a tiny teacher there)."""
    teacher_outer_steps: int
    """Outer steps the teacher must have (reused if it has them, else resumed or trained)."""
    teacher_settings: TeacherRun
    """``TeacherRun`` fields (a TOML table), used only if the teacher must be trained."""
    learner: str = "base"
    """The learner type (a key of ``experiments.common.learner_zoo.LEARNER_TYPES``)."""
    width_divisor: int = 4
    """Its conv filters and FC widths are divided by this."""
    seeds: int = 3
    """Initialisation seeds per kind of training (seed ``s`` also draws the curriculum)."""
    early_steps: int = 10
    """The study's "10 GTN steps": the first steps of the same curriculum run."""
    real_epochs: int = 1
    """Epochs of real data."""
    val_images: int = 1000
    """Validation images scored after each real-data epoch."""
    images: int = 1000
    """Test images of the noise and blur sweeps (the first ones)."""
    attack_images: int = 500
    """Test images attacked (the first ones)."""
    noise_betas: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
    """Gaussian noise: ``clip(x + beta z)``, beta in pixel units."""
    blur_betas: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
    """Gaussian blur: kernel standard deviation beta in pixels."""
    fgsm_betas: tuple[float, ...] = (0.0, 0.001, 0.002, 0.004, 0.008)
    """FGSM: ``attack_steps`` steps of ``x += beta sign(grad)``, clipped to [0, 1]."""
    lbfgs_betas: tuple[float, ...] = (0.6, 1.0, 2.0, 4.0, 8.0)
    """L-BFGS-style attack: ``attack_steps`` steps of ``x += lbfgs_step (grad loss - (1/beta)
    grad 1/2 ||x - x0||^2)``, clipped to [0, 1] (positive betas)."""
    attack_steps: int = 30
    """Steps of both attacks (the study's 30)."""
    lbfgs_step: float = 1.0
    """Step ``eps`` of the L-BFGS-style attack on the raw (per-image summed) loss gradient."""
    perturbation_seed: int = 0
    """Seed of the noise draws."""

    def __post_init__(self) -> None:
        if self.learner not in LEARNER_TYPES:
            raise ConfigError(f"learner {self.learner!r}: choose from {', '.join(LEARNER_TYPES)}")
        for name in ("width_divisor", "seeds", "early_steps", "real_epochs", "val_images",
                     "images", "attack_images", "attack_steps"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)!r}: expected a positive integer")
        for name in ("noise_betas", "blur_betas", "fgsm_betas", "lbfgs_betas"):
            values = getattr(self, name)
            if not values or any(not v >= 0 for v in values):
                raise ConfigError(f"{name}={values!r}: expected non-negative numbers")
        if any(v <= 0 for v in self.lbfgs_betas):
            raise ConfigError(
                f"lbfgs_betas={self.lbfgs_betas!r}: the penalty 1/beta needs beta > 0"
            )
        if not self.lbfgs_step > 0:
            raise ConfigError(f"lbfgs_step={self.lbfgs_step!r}: expected a positive number")


# ------------------------------------------------------------------ perturbations
@dataclass(frozen=True)
class Perturbation:
    """One of the study's perturbations.

    Attributes:
        label: Its name in tables and the figure.
        betas: The config field holding its strengths.
        attack: Whether it needs gradients (it then runs on ``attack_images`` images).
        apply: ``(model, pixels, labels, beta, config) -> perturbed pixels`` in [0, 1].
        log_x: Plot beta on a log axis.
    """

    label: str
    betas: str
    attack: bool
    apply: Callable[[nn.Module, torch.Tensor, torch.Tensor, float, Config], torch.Tensor]
    log_x: bool = False


def _noise(model: nn.Module, x: torch.Tensor, y: torch.Tensor, beta: float, c: Config) -> Any:
    return gaussian_noise(x, beta, torch.Generator().manual_seed(c.perturbation_seed))


def _blur(model: nn.Module, x: torch.Tensor, y: torch.Tensor, beta: float, c: Config) -> Any:
    return gaussian_blur(x, beta)


def _fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, beta: float, c: Config) -> Any:
    """The study's FGSM: Kurakin's basic iterative method with step beta, ``attack_steps``
    steps and no epsilon ball (epsilon 1 keeps only the [0, 1] clip)."""
    if beta == 0:
        return x.clone()
    attack = AttackConfig(epsilon=1.0, step_size=beta, steps=c.attack_steps)
    return run_attack("bim", model, x, y, attack)


def _lbfgs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, beta: float, c: Config) -> Any:
    attack = AttackConfig(epsilon=1.0, step_size=c.lbfgs_step, steps=c.attack_steps, beta=beta)
    return run_attack("lbfgs", model, x, y, attack)


#: Perturbation name -> spec, in figure-panel order.
PERTURBATIONS: dict[str, Perturbation] = {
    "gaussian_noise": Perturbation("Gaussian noise", "noise_betas", False, _noise),
    "gaussian_blur": Perturbation("Gaussian blur", "blur_betas", False, _blur),
    "fgsm": Perturbation("FGSM (30 steps)", "fgsm_betas", True, _fgsm),
    "lbfgs": Perturbation("L-BFGS-style", "lbfgs_betas", True, _lbfgs, log_x=True),
}


# ------------------------------------------------------------------ kinds of training
@dataclass
class Setup:
    """What every kind of training needs."""

    config: Config
    loaded: LoadedTeacher
    arch: Any
    device: torch.device
    batches: dict[int, Any]

    def curriculum(self, seed: int) -> Any:
        """The teacher's batches for ``seed`` (materialised once)."""
        if seed not in self.batches:
            self.batches[seed] = self.loaded.teacher.materialize(seed=seed)
        return self.batches[seed]


def _gtn(setup: Setup, seed: int, steps: int | None) -> nn.Module:
    batches = setup.curriculum(seed)
    models = teach(setup.loaded.teacher, setup.arch, setup.loaded.data, setup.loaded.net,
                   seed=seed, batches=batches, keep=() if steps is None else (steps,),
                   device=setup.device)  # fmt: skip
    return models[len(batches) if steps is None else steps]


def _real(setup: Setup, seed: int) -> nn.Module:
    return train_real(setup.arch, setup.loaded.data, setup.loaded.net, seed=seed,
                      epochs=setup.config.real_epochs, val_images=setup.config.val_images,
                      device=setup.device)  # fmt: skip


#: Kind of training -> (label, trainer(setup, seed) -> model).
TRAININGS: dict[str, tuple[str, Callable[[Setup, int], nn.Module]]] = {
    "gtn_full": ("full GTN", lambda s, seed: _gtn(s, seed, None)),
    "gtn_early": ("first GTN steps", lambda s, seed: _gtn(s, seed, s.config.early_steps)),
    "real": ("real data", _real),
}


def measure(
    model: nn.Module, pixels: torch.Tensor, labels: torch.Tensor, config: Config
) -> dict[str, list[float]]:
    """Accuracy at every beta of every perturbation for a pixel-space model."""
    curves: dict[str, list[float]] = {}
    for name, spec in PERTURBATIONS.items():
        n = config.attack_images if spec.attack else config.images
        x, y = pixels[:n], labels[:n]
        curves[name] = [accuracy(model, spec.apply(model, x, y, beta, config), y)
                        for beta in getattr(config, spec.betas)]  # fmt: skip
    curves["clean"] = [accuracy(model, pixels[: config.images], labels[: config.images])]
    curves["clean_attacked"] = [accuracy(model, pixels[: config.attack_images],
                                         labels[: config.attack_images])]  # fmt: skip
    return curves


def run(config: Config, ctx: Context) -> Outcome:
    """Train the learners, measure their curves, write the figure and tables."""
    clock = Clock()
    path = ctx.work / "teacher" if not config.teacher else REPO_ROOT / config.teacher
    run_dir = ctx.gtn(path, config.teacher_settings, config.teacher_outer_steps)
    loaded = load_teacher(run_dir, ctx.device, ctx.data_root)
    if config.early_steps >= loaded.teacher.config.inner_steps:
        raise ConfigError(f"early_steps={config.early_steps} must be fewer than the teacher's "
                          f"{loaded.teacher.config.inner_steps} inner steps")  # fmt: skip
    data = loaded.data
    arch = learner_architecture(config.learner, config.width_divisor, data.spec.num_classes)
    setup = Setup(config, loaded, arch, ctx.device, {})
    test = head(data.test, max(config.images, config.attack_images))
    pixels = data.denormalize(test.x).clamp_(0.0, 1.0)  # (N, C, H, W) in [0, 1]
    labels = test.y

    def unit(kind: str, seed: int) -> dict[str, Any]:
        timer = Clock()
        model = TRAININGS[kind][1](setup, seed)
        trained = timer.read()
        pixel_model = PixelModel(model, data.mean, data.std)
        curves = measure(pixel_model, pixels, labels, config)
        return {"curves": curves, "train": trained, "total": timer.read()}

    rows = []
    for seed in range(config.seeds):
        for kind in TRAININGS:
            out = ctx.memo(f"{kind}|{config.teacher or 'teacher'}|{seed}",
                           lambda k=kind, s=seed: unit(k, s))  # fmt: skip
            rows.append({"kind": kind, "seed": seed, **out})
            for name in PERTURBATIONS:
                for beta, acc in zip(getattr(config, PERTURBATIONS[name].betas),
                                     out["curves"][name], strict=True):  # fmt: skip
                    ctx.tb.add_scalar(f"{kind}/{name}/seed{seed}", acc, round(beta * 1e3))
    stats = _stats(config, rows)
    figure = ctx.figure("robustness.png")
    _plot(config, stats, figure)
    summary = {
        "architecture": str(arch),
        "teacher_outer_steps": loaded.outer_steps,
        "inner_steps": loaded.teacher.config.inner_steps,
        "curves": stats,
        "cpu_s_units": sum(r["total"]["cpu_s"] for r in rows),
        "run": clock.read(),
    }
    markdown = _markdown(config, loaded, str(arch), stats, rows, summary, figure.name)
    return Outcome(markdown=markdown, summary=summary, rows=rows)


def _stats(config: Config, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Kind -> perturbation -> {"betas", "mean", "std", "n"}; also clean accuracies and the
    mean accuracy over each perturbation's betas per seed (its area, summarised)."""
    out: dict[str, Any] = {}
    for kind in TRAININGS:
        sel = [r for r in rows if r["kind"] == kind]
        out[kind] = {}
        for name in (*PERTURBATIONS, "clean", "clean_attacked"):
            per_seed = [r["curves"][name] for r in sel]
            columns = list(zip(*per_seed, strict=True))
            betas = (list(getattr(config, PERTURBATIONS[name].betas))
                     if name in PERTURBATIONS else [0.0])  # fmt: skip
            out[kind][name] = {
                "betas": betas,
                "mean": [mean_std(c)[0] for c in columns],
                "std": [mean_std(c)[1] for c in columns],
                "seed_means": [sum(c) / len(c) for c in per_seed],
                "n": len(sel),
            }
    return out


def _plot(config: Config, stats: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PERTURBATIONS), figsize=(4 * len(PERTURBATIONS), 3.4))
    for ax, (name, spec) in zip(axes, PERTURBATIONS.items(), strict=True):
        for i, (kind, (label, _)) in enumerate(TRAININGS.items()):
            s = stats[kind][name]
            mean, std = torch.tensor(s["mean"]), torch.tensor(s["std"])
            if kind == "gtn_early":
                label = f"first {config.early_steps} GTN steps"
            ax.plot(s["betas"], s["mean"], marker="o", ms=3, color=f"C{i}", label=label)
            ax.fill_between(s["betas"], (mean - std).tolist(), (mean + std).tolist(),
                            color=f"C{i}", alpha=0.2)  # fmt: skip
        if spec.log_x:
            betas = getattr(config, spec.betas)
            ax.set_xscale("log")
            ax.set_xticks(betas, [f"{b:g}" for b in betas])
            ax.minorticks_off()
        ax.set_title(spec.label)
        ax.set_xlabel("beta")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _markdown(
    config: Config,
    loaded: LoadedTeacher,
    arch: str,
    stats: dict[str, Any],
    rows: list[dict[str, Any]],
    summary: dict[str, Any],
    figure: str,
) -> str:
    steps = loaded.teacher.config.inner_steps
    labels = {"gtn_full": f"GTN {steps} steps", "gtn_early": f"GTN {config.early_steps} steps",
              "real": f"real {config.real_epochs} epoch"}  # fmt: skip
    lines = [
        f"Learner `{config.learner}` at widths /{config.width_divisor}: `{arch}` (weight norm + "
        f"batch-statistics batch norm). Teacher `{config.teacher or 'scratch teacher'}` "
        f"({loaded.outer_steps} outer steps, {steps} inner steps). {config.seeds} seeds per kind "
        f"of training (mean ± standard deviation). Noise and blur on the first {config.images} "
        f"test images, attacks on the first {config.attack_images}; both attacks "
        f"{config.attack_steps} steps, clipped to [0, 1] only; L-BFGS-style step "
        f"{config.lbfgs_step:g} on the per-image loss gradient.",
        "",
        f"![accuracy against beta]({figure})",
        "",
    ]
    clean = [
        [labels[k], *(fmt_mean_std([r["curves"][c][0] for r in rows if r["kind"] == k], 3)
                      for c in ("clean", "clean_attacked")), fmt_mean_std(
             [r["train"]["cpu_s"] for r in rows if r["kind"] == k], 1)]
        for k in TRAININGS
    ]  # fmt: skip
    header = ["training", f"clean accuracy ({config.images})",
              f"clean accuracy ({config.attack_images})", "training CPU s"]  # fmt: skip
    lines += [markdown_table(header, clean), ""]
    for name, spec in PERTURBATIONS.items():
        betas = getattr(config, spec.betas)
        body = []
        for j, beta in enumerate(betas):
            row = [f"{beta:g}"]
            for kind in TRAININGS:
                s = stats[kind][name]
                row.append(f"{s['mean'][j]:.3f} ± {s['std'][j]:.3f}")
            body.append(row)
        lines += [f"### {spec.label}", "",
                  markdown_table(["beta", *(labels[k] for k in TRAININGS)], body), ""]  # fmt: skip
    area = []
    for kind in TRAININGS:
        clean_mean = stats[kind]["clean"]["mean"][0]
        cells = [labels[kind]]
        for name in PERTURBATIONS:
            cells.append(fmt_mean_std(stats[kind][name]["seed_means"], 3))
        cells.append(f"{clean_mean:.3f}")
        area.append(cells)
    lines += [
        "### Mean accuracy over each sweep's betas (per seed, then mean ± std)",
        "",
        markdown_table(["training", *(s.label for s in PERTURBATIONS.values()), "clean"], area),
        "",
    ]
    lines.append(cpu_footer(summary))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main(NAME, Config, run, doc=__doc__))
