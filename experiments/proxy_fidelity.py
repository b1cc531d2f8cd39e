"""Proxy fidelity: GTN and short real-data proxies against a long real budget, with costs.

The GTN paper's NAS experiment: how well does a cheap estimate of an architecture's accuracy
rank architectures the way a long training run does? Random architectures are drawn from a
(width-scaled) search space; each is

- taught by every GTN teacher for its inner steps and scored on the first ``score_size``
  validation images (the search's GTN reward),
- trained once on real data with Adam at a constant learning rate (MetaQNN's 0.001, batch 128)
  for ``long_epochs`` epochs of a ``train_size``-image training subset, scored on the same
  validation images after each of ``proxy_epochs`` epochs and at the end; with a constant
  learning rate a k-epoch proxy *is* the first k epochs of the long run, so the short proxies
  cost nothing extra to measure;
- scored at the end of the long run on the first ``truth_size`` test images: the reference.

Every learner is the GTN learner (weight norm + batch-statistics batch norm, LeakyReLU,
Kaiming init, no dropout) from the same initialisation seed. The cost of a proxy is the wall
time to reach it (training time to that step, plus one scoring of the validation images);
Spearman's rho over all architectures and over the reference's top half, Kendall's tau and
top-k overlaps come with seeded bootstrap intervals (``metaqnn.evaluation.correlation``).

    python -m experiments proxy_fidelity --data-root ../shared/data
    python -m experiments proxy_fidelity --quick --data-root ../shared/data

Units (one architecture's real run, one teacher's reward) are memoised: a killed run restarts
where it stopped.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from envs.layers import Architecture
from envs.space import get_space
from experiments.common.architectures import families, sample_architectures
from experiments.common.checks import at_least
from experiments.common.proxies import (
    Proxy,
    ci,
    clock,
    correlations,
    epoch_label,
    plot_cost,
    train_with_checkpoints,
)
from experiments.harness import REPO_ROOT, Context, Outcome, main
from gtn.meta import load_meta_checkpoint, teacher_from_checkpoint
from metaqnn.core.data import Dataset, Split, load_dataset
from metaqnn.core.nets import NetConfig, count_flops, count_parameters
from metaqnn.core.training import evaluate
from metaqnn.errors import ConfigError
from metaqnn.evaluation.correlation import plot_scatter, rank_correlation
from metaqnn.markdown import markdown_table
from metaqnn.rewards.gtn import GTNReward
from metaqnn.teacher.run import TeacherRun
from metaqnn.teacher.shapes import fixed_learner_factory

NAME = "proxy_fidelity"

#: The GTN paper's NAS numbers (RESEARCH.md): GTN after about 30 s against 4 h of real data.
REFERENCE = {
    "gtn_spearman": 0.3606,
    "gtn_spearman_top_half": 0.5582,
    "real_3_epochs_spearman": 0.5235,
    "real_3_epochs_cost_vs_gtn": 9.0,
}


@dataclass(frozen=True)
class Config:
    """The architectures, the real-data budgets, the teachers and the statistics."""

    dataset: str = "mnist"
    """Dataset name (``metaqnn.core.data``)."""
    space: str = "mnist"
    """Search-space preset the architectures are drawn from."""
    width_divisor: int = 16
    """Conv filters and FC widths divided by this (as the space teacher was meta-trained)."""
    architectures: int = 50
    """Distinct architectures, in the order the space's uniform sampler draws them."""
    arch_seed: int = 20_261_123
    """Seed of the architecture sampler (apart from meta-training's)."""
    val_size: int = 5000
    """Training images held out for validation (must match the teachers' runs)."""
    data_seed: int = 0
    """Seed of the validation split (must match the teachers' runs)."""
    train_size: int = 3072
    """Real-data training images: a seeded random subset of the training split."""
    subset_seed: int = 0
    """Seed of the training subset."""
    batch_size: int = 128
    """Real-data batch size (MetaQNN's)."""
    lr: float = 0.001
    """Adam's learning rate, constant (MetaQNN's initial one)."""
    weight_decay: float = 5e-4
    """Adam's L2 penalty (MetaQNN's)."""
    long_epochs: int = 6
    """Epochs of the long real-data run: the reference."""
    proxy_epochs: tuple[float, ...] = (0.25, 1.0, 3.0)
    """Short real-data proxies, in epochs (each below ``long_epochs``)."""
    score_size: int = 1000
    """Validation images scoring every proxy (the first ones, as the search's reward)."""
    truth_size: int = 5000
    """Test images scoring the long run (the first ones)."""
    seed: int = 1
    """Initialisation seed of every learner, batch order seed, and the GTN curriculum's."""
    teachers: tuple[str, ...] = ()
    """GTN run folders (relative to the repository; ``{work}/`` means the scratch folder)."""
    teacher_labels: tuple[str, ...] = ()
    """One short label per teacher."""
    teacher_settings: tuple[TeacherRun, ...] = ()
    """Per teacher, the ``TeacherRun`` fields (TOML tables) that make it when its folder is
    empty."""
    teacher_outer_steps: tuple[int, ...] = ()
    """Per teacher, the outer steps it must have (an existing run with as many is reused)."""
    resamples: int = 1000
    """Bootstrap resamples of every confidence interval."""

    def __post_init__(self) -> None:
        at_least(self, ("architectures", "train_size", "batch_size", "long_epochs"))
        at_least(self, ("score_size", "truth_size", "width_divisor", "resamples"))
        if self.architectures < 3:
            raise ConfigError(f"architectures={self.architectures} must be at least 3")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ConfigError(f"lr={self.lr!r} must be positive and weight_decay="
                              f"{self.weight_decay!r} non-negative")  # fmt: skip
        bad = [e for e in self.proxy_epochs if not 0 < e < self.long_epochs]
        if bad:
            raise ConfigError(f"proxy_epochs {bad} must lie in (0, long_epochs="
                              f"{self.long_epochs})")  # fmt: skip
        if self.train_size < self.batch_size:
            raise ConfigError(f"train_size={self.train_size} is below one batch of "
                              f"{self.batch_size}")  # fmt: skip
        lengths = {len(self.teachers), len(self.teacher_labels), len(self.teacher_settings),
                   len(self.teacher_outer_steps)}  # fmt: skip
        if len(lengths) != 1:
            raise ConfigError("teachers, teacher_labels, teacher_settings and teacher_outer_steps "
                              f"must be equally long, got {sorted(lengths)}")  # fmt: skip
        if len(set(self.teacher_labels)) != len(self.teacher_labels):
            raise ConfigError(f"teacher_labels {self.teacher_labels} must be distinct")


# ------------------------------------------------------------------ real data
def real_run(
    arch: Architecture, data: Dataset, train: Split, config: Config, net: NetConfig,
    device: torch.device,
) -> dict[str, Any]:  # fmt: skip
    """One architecture's long real-data run with its proxies scored on the way.

    Returns:
        ``proxies`` (the checkpoint records of :func:`train_with_checkpoints`, the last being
        the long run's validation score), ``truth`` (test accuracy at the end), ``truth_s``.
    """
    per_epoch = len(train) // config.batch_size
    steps = [max(1, round(e * per_epoch)) for e in config.proxy_epochs]
    steps.append(config.long_epochs * per_epoch)
    if len(set(steps)) != len(steps):
        raise ConfigError(f"proxy_epochs {config.proxy_epochs} give the same step counts {steps} "
                          f"with {per_epoch} steps per epoch")  # fmt: skip
    order = sorted(range(len(steps)), key=steps.__getitem__)
    model = fixed_learner_factory(arch, data, net, device)(config.seed)
    score = Split(data.val.x[: config.score_size], data.val.y[: config.score_size])
    records = train_with_checkpoints(
        model, train, score, [steps[i] for i in order], lr=config.lr,
        batch_size=config.batch_size, weight_decay=config.weight_decay, seed=config.seed,
    )  # fmt: skip
    by_index = dict(zip(order, records, strict=True))
    t = time.perf_counter()
    test = Split(data.test.x[: config.truth_size], data.test.y[: config.truth_size])
    truth = evaluate(model, test)
    return {
        "proxies": [by_index[i] for i in range(len(steps))],
        "truth": truth.accuracy,
        "truth_loss": truth.loss,
        "truth_s": time.perf_counter() - t,
    }


# ------------------------------------------------------------------ teachers
def resolve_teacher(path: str, work: Path) -> Path:
    """A teacher's run folder: ``{work}/...`` under the scratch folder, else relative to the
    repository (absolute paths as given)."""
    if path.startswith("{work}/"):
        return work / path.removeprefix("{work}/")
    p = Path(path)
    return p if p.is_absolute() else REPO_ROOT / p


def gtn_rewards(
    ctx: Context, config: Config, data: Dataset, archs: Sequence[Architecture]
) -> dict[str, list[dict[str, Any]]]:
    """Per teacher label, one memoised GTN reward per architecture: ``accuracy`` (on the first
    ``score_size`` validation images), ``cost_s`` and ``cost_cpu_s`` (wall and CPU seconds of
    teaching and scoring); plus the
    teacher's one-off ``materialize_s`` and ``outer_steps`` under the key ``"_teachers"``."""
    out: dict[str, Any] = {"_teachers": {}}
    for path, label, settings, outer in zip(config.teachers, config.teacher_labels,
                                            config.teacher_settings, config.teacher_outer_steps,
                                            strict=True):  # fmt: skip
        run_dir = ctx.gtn(resolve_teacher(path, ctx.work), settings, outer)
        state = load_meta_checkpoint(run_dir)
        extra = state["extra"]
        for key, want in (("dataset", config.dataset), ("val_size", config.val_size),
                          ("seed", config.data_seed)):  # fmt: skip
            if extra.get(key) != want:
                raise ConfigError(f"teacher {label!r} ({run_dir}) has {key}={extra.get(key)!r}, "
                                  f"the experiment {want!r}")  # fmt: skip
        teacher = teacher_from_checkpoint(state, ctx.device)
        net = NetConfig(**extra["net_config"])
        t = time.perf_counter()
        reward = GTNReward(teacher, data, val_size=config.score_size, net_config=net,
                           seed=config.seed, device=ctx.device)  # fmt: skip
        out["_teachers"][label] = {
            "run": str(path), "outer_steps": state["step"], "learner": extra["learner"],
            "inner_steps": reward.steps, "materialize_s": time.perf_counter() - t,
        }  # fmt: skip
        rows = []
        for i, arch in enumerate(tqdm(archs, desc=f"GTN {label}", disable=not ctx.progress)):

            def unit(arch: Architecture = arch, reward: GTNReward = reward) -> dict[str, float]:
                t = clock()
                result = reward.evaluate(arch)
                wall, cpu = clock() - t
                return {"accuracy": result.reward, "cost_s": wall, "cost_cpu_s": cpu}

            rows.append(ctx.memo(f"gtn:{label}:{i}:{arch}", unit))
        out[label] = rows
    return out


# ------------------------------------------------------------------ the experiment
def run(config: Config, ctx: Context) -> Outcome:
    """Draw the architectures, score every proxy and the long run, correlate, report."""
    started = time.perf_counter()
    if not config.teachers:
        raise ConfigError("no teachers configured")
    data = load_dataset(config.dataset, root=ctx.data_root, val_size=config.val_size,
                        seed=config.data_seed, device=ctx.device)  # fmt: skip
    if config.train_size > len(data.train):
        raise ConfigError(f"train_size={config.train_size} exceeds the {len(data.train)} "
                          "training images")  # fmt: skip
    pick = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(
        config.subset_seed))[: config.train_size].to(data.train.x.device)  # fmt: skip
    train = Split(data.train.x[pick], data.train.y[pick])
    space = get_space(config.space).scale_widths(config.width_divisor)
    archs = sample_architectures(space, config.architectures, config.arch_seed)
    channels, size, _ = data.spec.input_shape

    gtn = gtn_rewards(ctx, config, data, archs)
    net = NetConfig(**load_meta_checkpoint(resolve_teacher(config.teachers[0], ctx.work))
                    ["extra"]["net_config"])  # fmt: skip
    real = []
    for i, arch in enumerate(tqdm(archs, desc="real data", disable=not ctx.progress)):
        rec = ctx.memo(
            f"real:{i}:{arch}",
            lambda arch=arch: real_run(arch, data, train, config, net, ctx.device),
        )
        real.append(rec)
        ctx.tb.add_scalar("truth/test_accuracy", rec["truth"], i)
        for label in config.teacher_labels:
            ctx.tb.add_scalar(f"gtn/{label}", gtn[label][i]["accuracy"], i)

    truth = [r["truth"] for r in real]
    per_epoch = config.train_size // config.batch_size
    proxies = [
        Proxy(f"GTN, {label}", [g["accuracy"] for g in gtn[label]],
              [g["cost_cpu_s"] for g in gtn[label]], [g["cost_s"] for g in gtn[label]],
              f"{gtn['_teachers'][label]['inner_steps']} synthetic")
        for label in config.teacher_labels
    ]  # fmt: skip
    budgets = [*config.proxy_epochs, float(config.long_epochs)]
    for k, epochs in enumerate(budgets):
        name = f"real, {epoch_label(epochs)}" + (" (validation)" if k == len(budgets) - 1 else "")
        proxies.append(Proxy(
            name, [r["proxies"][k]["accuracy"] for r in real],
            [r["proxies"][k]["train_cpu_s"] + r["proxies"][k]["score_cpu_s"] for r in real],
            [r["proxies"][k]["train_s"] + r["proxies"][k]["score_s"] for r in real],
            str(real[0]["proxies"][k]["step"]),
        ))  # fmt: skip
    stats = correlations(proxies, truth, config.resamples)
    no_gap = [i for i, a in enumerate(archs) if "GAP" not in families(a)]
    stats_no_gap = (
        {p.name: rank_correlation([p.values[i] for i in no_gap], [truth[i] for i in no_gap],
                                  resamples=config.resamples, seed=0) for p in proxies}
        if len(no_gap) >= 3 else {}
    )  # fmt: skip

    # figures
    figures = []
    for label in config.teacher_labels:
        slug = "".join(c if c.isalnum() else "_" for c in label)
        name = f"scatter_gtn_{slug}.png"
        plot_scatter([g["accuracy"] for g in gtn[label]], truth, ctx.figure(name),
                     names=(f"GTN reward ({label}), validation accuracy",
                            f"test accuracy after {config.long_epochs} real epochs"),
                     result=stats[f"GTN, {label}"])  # fmt: skip
        figures.append(name)
    plot_cost(proxies, stats, ctx.figure("correlation_vs_cost.png"), REFERENCE)
    figures.append("correlation_vs_cost.png")

    # report
    gtn_cost = statistics.mean(proxies[0].costs)
    head = ["proxy", f"steps of {config.batch_size}", "mean CPU s / arch", "mean wall s / arch",
            "CPU cost vs first GTN",
            "Spearman, all [95% CI]", "Spearman, top half [95% CI]", "Kendall", "top-10 overlap",
            f"Spearman without GAP (n={len(no_gap)})"]  # fmt: skip
    table = []
    for p in proxies:
        s = stats[p.name]
        cost = statistics.mean(p.costs)
        top10 = s.top_k.get(10)
        table.append([
            p.name, p.steps, f"{cost:.2f}", f"{statistics.mean(p.wall):.2f}",
            f"{cost / gtn_cost:.2f}x", ci(s.spearman),
            ci(s.spearman_top_half), f"{s.kendall.value:.3f}",
            f"{top10.value:.1f}" if top10 else "-",
            f"{stats_no_gap[p.name].spearman.value:.3f}" if stats_no_gap else "-",
        ])  # fmt: skip
    table.append(["GTN paper (CIFAR-10, GPU): GTN vs 4 h of real data", "128 synthetic",
                  "about 30 (GPU)", "-", "1x", f"{REFERENCE['gtn_spearman']}",
                  f"{REFERENCE['gtn_spearman_top_half']}", "-", "-", "-"])  # fmt: skip
    table.append(["GTN paper (CIFAR-10, GPU): real, 3 epochs", "-", "9x GTN's", "-", "9x",
                  f"{REFERENCE['real_3_epochs_spearman']} (set not stated)", "-", "-", "-",
                  "-"])  # fmt: skip
    rows_md = [[str(i + 1), f"{truth[i]:.4f}",
                *(f"{p.values[i]:.4f}" for p in proxies), ", ".join(families(a)), f"`{a}`"]
               for i, a in enumerate(archs)]  # fmt: skip
    teachers_md = [[label, t["run"], str(t["outer_steps"]), t["learner"], str(t["inner_steps"]),
                    f"{t['materialize_s']:.2f}"]
                   for label, t in gtn["_teachers"].items()]  # fmt: skip
    real_s = [r["proxies"][-1]["train_cpu_s"] for r in real]
    lines = [
        f"{len(archs)} distinct architectures drawn by the `{config.space}` space's uniform "
        f"sampler (seed {config.arch_seed}), widths divided by {config.width_divisor}; learners "
        f"are the GTN learner ({net.norm}, {net.activation}, {net.init} init, no dropout), "
        f"initialisation seed {config.seed}. Reference: test accuracy (first "
        f"{config.truth_size} test images) after {config.long_epochs} epochs of Adam at a "
        f"constant lr {config.lr:g} (weight decay {config.weight_decay:g}, batch "
        f"{config.batch_size}) on a {config.train_size}-image subset of the training split "
        f"({per_epoch} steps per epoch, {config.long_epochs * per_epoch} steps in all). Every "
        f"proxy is scored on the first {config.score_size} validation images; the real-data "
        f"proxies are the same run stopped earlier (a constant lr makes a k-epoch proxy the "
        f"first k epochs of the long run), so they cost no extra training. Cost: CPU time "
        f"(and wall time) to the proxy: training plus one scoring, one torch thread, on a "
        f"machine shared with other jobs (wall time grows with the sharing, CPU time less).",
        "",
        markdown_table(head, table),
        "",
        "Teachers (the synthetic batches are generated once per teacher and reused for every "
        "architecture; that one-off time is not in the per-architecture cost):",
        "",
        markdown_table(["teacher", "run", "outer steps", "meta-trained on", "inner steps",
                        "batch generation (s, once)"], teachers_md),
        "",
        f"Real-data training CPU time per architecture for the whole long run: mean "
        f"{statistics.mean(real_s):.1f} s, median {statistics.median(real_s):.1f} s, max "
        f"{max(real_s):.1f} s; {sum(real_s):.0f} s in all. Whole experiment (this invocation, "
        f"memoised units reused): {time.perf_counter() - started:.0f} s.",
        "",
        *(f"![{f}]({f})" for f in figures),
        "",
        "Per architecture (accuracies; columns as the proxies above):",
        "",
        markdown_table(["#", f"test, {config.long_epochs} epochs",
                        *(p.name for p in proxies), "families", "architecture"], rows_md),
    ]  # fmt: skip
    summary = {
        "architectures": len(archs),
        "truth_median": statistics.median(truth),
        "correlations": {p.name: stats[p.name].to_dict() for p in proxies},
        "correlations_without_gap": {k: v.to_dict() for k, v in stats_no_gap.items()},
        "mean_cost_cpu_s": {p.name: statistics.mean(p.costs) for p in proxies},
        "mean_cost_wall_s": {p.name: statistics.mean(p.wall) for p in proxies},
        "teachers": gtn["_teachers"],
        "real_train_cpu_s_total": sum(real_s),
        "reference": REFERENCE,
    }
    rows = [
        {"architecture": str(a), "families": families(a), "truth": truth[i],
         "parameters": count_parameters(fixed_learner_factory(a, data, net, "cpu")(0)),
         "mflops": count_flops(a, in_channels=channels, input_size=size) / 1e6,
         **{p.name: p.values[i] for p in proxies},
         **{f"{p.name} cpu_s": p.costs[i] for p in proxies},
         **{f"{p.name} wall_s": p.wall[i] for p in proxies}}
        for i, a in enumerate(archs)
    ]  # fmt: skip
    return Outcome("\n".join(lines), summary, rows)


if __name__ == "__main__":
    raise SystemExit(main(NAME, Config, run, doc=__doc__))
