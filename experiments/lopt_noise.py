"""A learned optimizer meta-trained for Gaussian-noise robustness (Metz et al. 2019) against
learning-rate-tuned Adam, inner-trained on clean and on noisy data.

Meta-training: antithetic ES over unrolls (:mod:`metaqnn.learned_optimizer.es`) of the paper's
4-layer CNN at reduced width, inner-trained on clean images; the meta-loss is the validation loss
under pixel noise 0.05 at the end of the inner run (full 200-step unrolls by default; truncations
and a burn-in are configurable). By default the optimizer is a residual on Adam that starts as
exactly Adam at the tuned learning rate (``base = "adam"``, ``theta_init = "zero_output"``).

Evaluation (:mod:`metaqnn.learned_optimizer.evaluation`): Adam's learning rate is tuned on the
same noisy validation loss over a grid, once with clean and once with noisy inner training; every
optimizer then trains fresh models (seeds not seen in meta-training or tuning) for the same steps
on the same batches, and each model is measured on the meta-objective, on the test set at several
noise levels and on held-out corruptions (the evaluation module); the learned optimizer's noisy loss
is also compared with each Adam's seed by seed. The same comparison at twice the meta-trained
horizon shows how far the optimizer generalises in time. Meta-training resumes from its
checkpoint; each evaluation is a memoised unit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from experiments.common.checks import at_least
from experiments.harness import Context, Outcome, main
from metaqnn.core.data import load_dataset
from metaqnn.errors import ConfigError
from metaqnn.evaluation.corruptions import CORRUPTIONS
from metaqnn.learned_optimizer.checkpoints import CHECKPOINT_NAME, ESConfig, load_lopt_checkpoint
from metaqnn.learned_optimizer.comparison import ComparisonConfig
from metaqnn.learned_optimizer.es import ESTrainer
from metaqnn.learned_optimizer.evaluation import METHODS, RunEvaluation, evaluate_run
from metaqnn.learned_optimizer.optimizer import BASES, THETA_INITS, LOptConfig
from metaqnn.learned_optimizer.task import InnerModelConfig, build_task
from metaqnn.markdown import markdown_table

NAME = "lopt_noise"


@dataclass(frozen=True)
class Config:
    """Meta-training and evaluation budget."""

    dataset: str = "digits"
    """Dataset (``digits``: 8x8, 1,200 train / 300 val / 297 test)."""
    val_size: int = 300
    """Training images held out as the validation split of the meta-loss."""
    split_seed: int = 0
    """Seed of the validation split."""
    noise: float = 0.05
    """Pixel noise of the meta-loss (the paper's 0.05)."""
    channels: tuple[int, ...] = (8, 8, 16, 16)
    """Inner CNN channels (the paper's 32, 32, 64, 64 divided by 4)."""
    strides: tuple[int, ...] = (2, 2, 1, 1)
    """Inner CNN strides (the paper's)."""
    step_mult: float = 0.003
    """Scale of the optimizer's direction output (the paper's 0.001)."""
    exp_mult: float = 0.1
    """Scale of the optimizer's log-step output (the paper's 0.001)."""
    base: str = "adam"
    """What the MLP's outputs act on: ``none`` (the paper's ``step_mult * d * exp(exp_mult *
    m)``) or ``adam`` (Adam's step at ``base_lr`` times ``exp(exp_mult * m)`` plus
    ``step_mult * d``; see ``metaqnn.learned_optimizer.optimizer``)."""
    base_lr: float = 0.01
    """Adam's learning rate under the ``adam`` base."""
    theta_init: str = "zero_output"
    """Start of the optimizer's weights: ``random`` (the paper's), ``adam`` (a normalised Adam
    step) or ``zero_output`` (outputs 0: exactly Adam at ``base_lr`` under the ``adam``
    base)."""
    outer_steps: int = 240
    """ES steps."""
    pairs: int = 8
    """Antithetic pairs per ES step."""
    sigma: float = 0.01
    """Perturbation standard deviation."""
    outer_lr: float = 0.002
    """Adam learning rate on the optimizer's weights."""
    truncation: int = 200
    """Inner steps per ES step."""
    log_loss: bool = True
    """ES on the log of the meta-loss (False: on the loss itself)."""
    inner_steps: int = 200
    """Inner steps of one training run (the horizon meta-trained for)."""
    burn_in: int = 0
    """Inner steps of every run taken by the current optimizer before ES truncations start
    (``inner_steps - truncation``: ES scores only the loss at the end of the run)."""
    batch_size: int = 64
    """Training images per inner step."""
    val_batch: int = 256
    """Noisy validation images per meta-loss."""
    seed: int = 0
    """Seed of meta-training."""
    adam_lrs: tuple[float, ...] = (
        0.001,
        0.002,
        0.003,
        0.005,
        0.007,
        0.01,
        0.014,
        0.02,
        0.03,
        0.05,
        0.1,
    )
    """Adam's learning-rate grid."""
    tune_seeds: int = 5
    """Models per Adam learning rate when tuning."""
    eval_seeds: int = 20
    """Models per optimizer in the comparison."""
    test_noise: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3)
    """Test-set noise levels."""
    corruptions: tuple[str, ...] = tuple(c for c in CORRUPTIONS if c != "gaussian_noise")
    """Held-out corruptions."""
    horizon_factor: int = 2
    """Also compare at this many times the meta-trained horizon (1: skip)."""

    def __post_init__(self) -> None:
        if self.theta_init not in THETA_INITS:
            raise ConfigError(
                f"{NAME}: theta_init={self.theta_init!r}; choose from {', '.join(THETA_INITS)}"
            )
        if self.base not in BASES:
            raise ConfigError(f"{NAME}: base={self.base!r}; choose from {', '.join(BASES)}")
        if not 0 <= self.burn_in < self.inner_steps:
            raise ConfigError(f"{NAME}: burn_in={self.burn_in!r} must be in [0, inner_steps="
                              f"{self.inner_steps})")  # fmt: skip
        at_least(self, ("tune_seeds", "eval_seeds", "horizon_factor"))


def lopt_config(config: Config) -> LOptConfig:
    """The learned optimizer's architecture of the experiment's config."""
    return LOptConfig(step_mult=config.step_mult, exp_mult=config.exp_mult, base=config.base,
                      base_lr=config.base_lr)  # fmt: skip


def _describe_optimizer(config: Config) -> str:
    """One sentence on how the MLP's outputs make the step (for the report)."""
    if config.base == "adam":
        return (f"update = Adam's step at lr {config.base_lr:g} x exp({config.exp_mult:g} m) "
                f"+ {config.step_mult:g} d (a residual on Adam; theta started "
                f"'{config.theta_init}')")  # fmt: skip
    return (f"update = {config.step_mult:g} d exp({config.exp_mult:g} m) (paper: 0.001 d "
            f"exp(0.001 m); theta started '{config.theta_init}')")  # fmt: skip


def _meta_train(config: Config, ctx: Context, data: Any) -> dict[str, Any]:
    """The ES run under the scratch folder (resumed from its checkpoint); its checkpoint dict."""
    run_dir = ctx.work / "lopt"
    ckpt = run_dir / CHECKPOINT_NAME
    es = ESConfig(
        outer_steps=config.outer_steps, pairs=config.pairs, sigma=config.sigma,
        outer_lr=config.outer_lr, truncation=config.truncation, inner_steps=config.inner_steps,
        burn_in=config.burn_in, log_loss=config.log_loss,
        batch_size=config.batch_size, val_batch=config.val_batch, theta_init=config.theta_init,
        seed=config.seed, checkpoint_every=25,
    )  # fmt: skip
    extra = {
        "dataset": config.dataset, "val_size": len(data.val), "seed": config.split_seed,
        "noise": config.noise, "channels": list(config.channels), "strides": list(config.strides),
    }  # fmt: skip
    model = InnerModelConfig(config.channels, config.strides)
    task = build_task(data, model, config.noise, ctx.device)
    trainer = ESTrainer(task, es, lopt_config(config), logdir=ctx.work / "tb",
                        checkpoint_path=ckpt, extra=extra)  # fmt: skip
    if ckpt.is_file():
        trainer.load_state(load_lopt_checkpoint(ckpt))
        print(f"resuming meta-training at ES step {trainer.step}", flush=True)
    else:
        trainer.log_hyperparameters(extra)
    if trainer.step < es.outer_steps:
        trainer.run(progress=ctx.progress)
    return load_lopt_checkpoint(ckpt)


def _comparison(config: Config, steps: int) -> ComparisonConfig:
    return ComparisonConfig(
        steps=steps, batch_size=config.batch_size, noise=config.noise, adam_lrs=config.adam_lrs,
        tune_seeds=tuple(range(100, 100 + config.tune_seeds)), curve_every=config.truncation,
        eval_seeds=tuple(range(config.eval_seeds)), test_noise=config.test_noise,
        corruptions=config.corruptions,
    )  # fmt: skip


def _figures(ctx: Context, state: dict[str, Any], evaluation: RunEvaluation, config: Config):
    """ES curve beside tuned Adam's meta-objective; test accuracy against noise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = state["history"]
    ends = [(r["step"], r["meta_loss"]) for r in history if r["inner_step"] == config.inner_steps]
    summary = evaluation.summary()
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    if ends:
        ax[0].plot(*zip(*ends, strict=True), ".", alpha=0.5, label="learned: end of an inner run")
        k = 10
        if len(ends) >= k:
            smooth = [sum(v for _, v in ends[i - k : i]) / k for i in range(k, len(ends) + 1)]
            ax[0].plot([s for s, _ in ends[k - 1 :]], smooth, label=f"running mean of {k}")
    for name, style in (("adam_clean", "--"), ("adam_noisy", ":")):
        value = summary[name]["val_noisy_loss"][0]
        ax[0].axhline(value, ls=style, color="k", label=f"{METHODS[name]} (eval seeds)")
    ax[0].axhline(summary["learned"]["val_noisy_loss"][0], color="C3", label="learned (eval seeds)")
    ax[0].set(xlabel="ES step", ylabel=f"val loss, noise {config.noise:g}", yscale="log",
              title="meta-objective after the full horizon")  # fmt: skip
    ax[0].legend(fontsize=7)
    c = evaluation.config
    for name in evaluation.rows:
        accs = [100 * summary[name][f"test_acc@{x:g}"][0] for x in c.test_noise]
        ax[1].plot(c.test_noise, accs, "o-", label=METHODS[name])
    ax[1].axvline(config.noise, color="grey", lw=0.8)
    ax[1].set(xlabel="test pixel noise sigma", ylabel="test accuracy %",
              title=f"{config.dataset}, {c.steps} steps")  # fmt: skip
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(ctx.figure("lopt_noise.png"), dpi=80)
    plt.close(fig)


def run(config: Config, ctx: Context) -> Outcome:
    """Meta-train, compare at the horizon and at ``horizon_factor`` times it, report."""
    import time

    data = load_dataset(config.dataset, root=ctx.data_root, val_size=config.val_size,
                        seed=config.split_seed, device=ctx.device)  # fmt: skip
    t0 = time.perf_counter()
    state = _meta_train(config, ctx, data)
    meta_s = sum(r["seconds"] for r in state["history"])
    evaluations = {}
    factors = sorted({1, config.horizon_factor})
    for factor in factors:
        steps = config.inner_steps * factor
        key = f"compare-{steps}-steps-es{state['step']}"
        record = ctx.memo(
            key,
            lambda s=steps: evaluate_run(state, data, _comparison(config, s), ctx.device).to_dict(),
        )
        evaluations[factor] = RunEvaluation.from_dict(record)
    main_eval = evaluations[1]
    _figures(ctx, state, main_eval, config)
    wall = time.perf_counter() - t0

    s = {f: e.summary() for f, e in evaluations.items()}
    obj = lambda f, n: s[f][n]["val_noisy_loss"]  # noqa: E731
    beats = {f: obj(f, "learned")[0] < min(obj(f, "adam_clean")[0], obj(f, "adam_noisy")[0])
             for f in factors}  # fmt: skip
    corr = config.corruptions
    better = [c for c in corr if s[1]["learned"][f"corruption/{c}"][0]
              > s[1]["adam_clean"][f"corruption/{c}"][0]]  # fmt: skip
    history = state["history"]
    paired = {f: evaluations[f].paired() for f in factors}
    clean = paired[1]["adam_clean"]
    paper_rows = [
        ["meta-trained for", "Gaussian noise 0.05", f"Gaussian noise {config.noise:g}"],
        [
            "learned vs tuned Adam, noisy validation loss",
            "learned lower",
            f"{obj(1, 'learned')[0]:.4f} vs {obj(1, 'adam_clean')[0]:.4f} (clean training), "
            f"{obj(1, 'adam_noisy')[0]:.4f} (noisy training): "
            + ("learned lower" if beats[1] else "learned NOT lower"),
        ],
        [
            "paired by seed: learned minus Adam (clean training)",
            "",
            f"{clean.mean:+.4f} ± {clean.std:.4f} (sem {clean.sem:.4f}); learned lower on "
            f"{clean.wins} of {clean.n} seeds",
        ],
        [
            "held-out corruptions helped (vs Adam, clean training)",
            "about half (mixed-corruption meta-training)",
            f"{len(better)} of {len(corr)}",
        ],
    ]
    lines = [
        f"Learned optimizer (per-parameter MLP, {LOptConfig().n_features} features, hidden 32) "
        f"meta-trained by antithetic ES on {config.dataset} for pixel noise {config.noise:g}, "
        f"compared with Adam tuned on the same loss. Figure: [lopt_noise.png](lopt_noise.png).",
        "",
        markdown_table(["", "Metz et al. 2019 (RESEARCH.md)", "ours"], paper_rows),
        "",
        "Scaling: the paper meta-trains on 32x32 images with a 32-32-64-64 CNN for thousands of "
        f"ES steps; here {config.dataset} (8x8), channels {list(config.channels)}, "
        f"{state['step']} ES steps of {config.pairs} antithetic pairs over truncations of "
        f"{config.truncation} inner steps (ES on the {'log of the ' if config.log_loss else ''}"
        f"meta-loss), inner runs of {config.inner_steps} steps of "
        f"{config.batch_size}"
        + (
            f", the first {config.burn_in} of each run taken before any truncation (ES scores "
            "the end of the run)"
            if config.burn_in
            else ""
        )
        + f"; {_describe_optimizer(config)}. Meta-training took {meta_s:.0f} s of step time "
        f"({len(history)} steps, {sum(r['diverged'] for r in history)} diverged unrolls); "
        f"this session {wall:.0f} s with the evaluation.",
        "",
    ]
    for factor in factors:
        e = evaluations[factor]
        title = ("at the meta-trained horizon" if factor == 1
                 else f"at {factor}x the meta-trained horizon (Adam re-tuned)")  # fmt: skip
        lines += [f"## {e.config.steps} inner steps: {title}", "", e.markdown(), ""]
        lines += [f"Tuning took {e.seconds['tune_adam']:.0f} s, the comparison "
                  f"{e.seconds['compare']:.0f} s.", ""]  # fmt: skip
    summary = {
        "es_steps": state["step"],
        "meta_train_step_seconds": meta_s,
        "learned_beats_tuned_adam": {str(f * config.inner_steps): beats[f] for f in factors},
        "noisy_val_loss": {
            str(f * config.inner_steps): {n: obj(f, n) for n in evaluations[f].rows}
            for f in factors
        },
        "adam_lr": {str(f * config.inner_steps): evaluations[f].adam_lr for f in factors},
        "paired_learned_minus": {
            str(f * config.inner_steps): {n: asdict(d) for n, d in paired[f].items()}
            for f in factors
        },
        "corruptions_better_than_adam_clean": better,
    }
    rows = [{"steps": evaluations[f].config.steps, "method": n, **r}
            for f in factors for n, rs in evaluations[f].rows.items() for r in rs]  # fmt: skip
    return Outcome(markdown="\n".join(lines), summary=summary, rows=rows)


if __name__ == "__main__":
    raise SystemExit(main(NAME, Config, run, doc=__doc__))
