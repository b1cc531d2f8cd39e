"""Design fidelity: does the search's reward rank architectures as the final phase trains them?

``metaqnn design`` searches at a reduced width (MNIST: the space's widths / 16) with a cheap
reward and trains its finalists at the final width (widths / 4 for a design within the MNIST
cost cap) with the ``strong`` recipe. This experiment (issue 18, item 2) measures how well each
cheap reward ranks architectures the way that final training does:

- ``architectures`` architectures of the dataset's space at the search width, within the
  design's cost cap, chosen for spread: a pool of distinct draws of the cost-masked sampler
  (``metaqnn.search.cost.sample``) is cut into depth x FLOPs quantile strata, which are drawn
  from in turn (deterministic given ``arch_seed``);
- the truth: each trained at widths / ``final_width_divisor`` with the final recipe for
  ``final_epochs`` epochs on the design's training split (seed ``truth_seed``, never a
  proxy's: no proxy is a prefix of it); validation and test accuracy are recorded and
  ``reference`` (test by default) is what the proxies are ranked against;
- the proxies, each with its measured cost per architecture: the GTN reward of ``teacher`` at
  each width in ``gtn_width_divisors``, built as the search builds it
  (``metaqnn.rewards.spec.build_reward``, ``score_size`` validation images); the search's
  ``real`` reward (``real_epochs`` epochs of MetaQNN's recipe at the search width); a real-data
  proxy of ``matched_steps`` Adam steps at the search width, as many as cost what the GTN
  reward costs when 0; and the zero-training floor: parameters and forward FLOPs at the final
  width.

Spearman, Kendall, Spearman over the top half and top-k overlaps come with seeded bootstrap
intervals (``metaqnn.evaluation.correlation``); the recommendation (the cheapest proxy that
clears the zero-training floor and is not significantly worse than the best one) is computed
from them.

    python -m experiments design_fidelity --data-root ../shared/data
    python -m experiments design_fidelity --quick

Every unit (one truth run, one proxy score) is memoised: a killed run restarts where it
stopped. The truths are measured in the order the architectures were drawn from the strata, so
an unfinished run's are spread over them; ``--set interim=true`` reports on those so far.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import torch
from tqdm.auto import tqdm

from envs.layers import Architecture
from envs.space import get_space
from experiments.common.architectures import families
from experiments.common.checks import at_least, known_choices
from experiments.common.design_fidelity_report import (
    ProxyScores,
    architecture_table,
    correlate,
    proxy_rows,
    proxy_table,
    recommend,
    scatter_figures,
    strata_table,
    zero_training_proxies,
)
from experiments.common.proxies import clock, epoch_label
from experiments.common.selection import select_architectures
from experiments.harness import REPORT_ONLY, Context, Outcome, main
from gtn.meta import load_meta_checkpoint
from metaqnn.core.data import Dataset, Split
from metaqnn.core.nets import NetConfig, build_model, count_parameters
from metaqnn.core.recipes import RECIPES, recipe_config
from metaqnn.core.training import TrainConfig, evaluate, train_architecture
from metaqnn.core.widths import forward_flops, rescale
from metaqnn.design.pipeline import FINAL_NET, DesignConfig, load_data
from metaqnn.design.presets import PRESETS
from metaqnn.errors import ConfigError
from metaqnn.rewards.real import RealDataReward
from metaqnn.rewards.spec import RewardSpec, build_reward

NAME = "design_fidelity"


@dataclass(frozen=True)
class Config:
    """The architectures, the truth's recipe, the proxies and the statistics."""

    dataset: str = "mnist"
    """Dataset with a ``metaqnn design`` preset; the space, split and cost cap are its."""
    seed: int = 0
    """The design run's seed (``metaqnn design --seed``): the validation split and the seed of
    every proxy, as the search gives its rewards."""
    width_divisor: int = 16
    """Search width: the space's widths divided by this (the MNIST preset's 16)."""
    final_width_divisor: int = 4
    """The truth's width: the space's widths divided by this (MNIST: the cost width, where a
    capped design is trained at the narrowest)."""
    architectures: int = 48
    """Architectures chosen from the pool."""
    arch_seed: int = 20_261_123
    """Seed of the pool's sampler and of the draws from the strata."""
    pool_size: int = 2000
    """Distinct architectures drawn within the cap before stratifying."""
    depth_strata: int = 4
    """Depth quantile bins of the pool (equal depths share a bin)."""
    flops_strata: int = 4
    """Forward-FLOPs (at the final width) quantile bins of the pool."""
    train_size: int = 0
    """Training images of every real-data run (truth and proxies): a subset of the design's
    training split drawn with ``seed``; 0: all of it."""
    recipe: str = "strong"
    """The truth's recipe (a key of ``metaqnn.core.recipes.RECIPES``; the design's final one)."""
    final_epochs: int = 3
    """Epochs of the truth's recipe."""
    truth_seed: int = 1
    """Seed of the truth runs (initialisation, shuffling); must differ from ``seed``."""
    reference: str = "test"
    """The truth the proxies are ranked against: ``test`` or ``val`` accuracy."""
    teacher: str = "mnist"
    """The GTN teacher: a shipped name, a run folder or a checkpoint."""
    gtn_width_divisors: tuple[int, ...] = (16, 8)
    """Widths (divisors of the space's) at which the GTN reward scores each architecture."""
    score_size: int = 1000
    """Validation images the GTN reward and the matched real-data proxy score (the first)."""
    real_epochs: int = 1
    """Epochs of the search's ``real`` reward."""
    matched_steps: int = 0
    """Adam steps of the matched real-data proxy; 0: as many as cost the mean CPU time of the
    GTN reward at the search width (the first GTN width when the search width is not one)."""
    top_k: tuple[int, ...] = (5, 10)
    """The k of the top-k overlaps."""
    resamples: int = 1000
    """Bootstrap resamples of every interval."""
    interim: bool = field(default=False, metadata=REPORT_ONLY)
    """Report on the architectures whose truth is already measured, training no more (an
    interim report of an unfinished run; the same scratch folder and memo)."""

    def __post_init__(self) -> None:
        known_choices("dataset", [self.dataset], PRESETS)
        known_choices("recipe", [self.recipe], RECIPES)
        known_choices("reference", [self.reference], ("test", "val"))
        at_least(self, ("width_divisor", "final_width_divisor", "pool_size", "depth_strata",
                        "flops_strata", "final_epochs", "score_size", "real_epochs",
                        "resamples"))  # fmt: skip
        at_least(self, ("seed", "arch_seed", "truth_seed", "train_size", "matched_steps"), 0)
        at_least(self, "architectures", 3)
        if self.pool_size < self.architectures:
            raise ConfigError(f"pool_size={self.pool_size} must be at least architectures="
                              f"{self.architectures}")  # fmt: skip
        if self.final_width_divisor > self.width_divisor:
            raise ConfigError(f"final_width_divisor={self.final_width_divisor} must not be "
                              f"above width_divisor={self.width_divisor}")  # fmt: skip
        if self.truth_seed == self.seed:
            raise ConfigError(f"truth_seed={self.truth_seed} must differ from seed={self.seed}: "
                              "the truth runs are independent of the proxies")  # fmt: skip
        if not self.gtn_width_divisors or min(self.gtn_width_divisors) < 1 or len(
                set(self.gtn_width_divisors)) != len(self.gtn_width_divisors):  # fmt: skip
            raise ConfigError(f"gtn_width_divisors={list(self.gtn_width_divisors)} must be "
                              "distinct positive integers, at least one")  # fmt: skip
        if not self.top_k or not all(1 <= k <= self.architectures for k in self.top_k):
            raise ConfigError(f"top_k={list(self.top_k)} must lie in 1..architectures="
                              f"{self.architectures}")  # fmt: skip
        if not self.teacher:
            raise ConfigError("teacher='' must name a teacher (a shipped name or a run folder)")


# ------------------------------------------------------------------ units
def design_data(config: Config, ctx: Context) -> tuple[DesignConfig, Dataset]:
    """The design run's config and its dataset (the same split ``metaqnn design`` loads), its
    training split cut to ``train_size`` when set."""
    design = DesignConfig(dataset=config.dataset, seed=config.seed, data_root=ctx.data_root,
                          device=str(ctx.device), width_divisor=config.width_divisor)  # fmt: skip
    data = load_data(design)
    if config.train_size:
        if config.train_size > len(data.train):
            raise ConfigError(f"train_size={config.train_size} exceeds the {len(data.train)} "
                              "training images")  # fmt: skip
        gen = torch.Generator().manual_seed(config.seed)
        pick = torch.randperm(len(data.train), generator=gen)[: config.train_size]
        pick = pick.to(data.train.x.device)
        data = dataclasses.replace(data, train=Split(data.train.x[pick], data.train.y[pick]))
    return design, data


def truth_run(arch: Architecture, data: Dataset, config: Config,
              device: torch.device) -> dict[str, Any]:  # fmt: skip
    """One architecture (at the final width) trained with the final recipe, as the design's
    final phase trains it: validation and test accuracy (chance for a failed run), status,
    epochs, parameters, wall and CPU seconds."""
    train = recipe_config(config.recipe, epochs=config.final_epochs, seed=config.truth_seed)
    t = clock()
    result = train_architecture(arch, data.train, data.val, train, net_config=FINAL_NET,
                                device=device)  # fmt: skip
    test = evaluate(result.model, data.test, batch_size=train.eval_batch_size)
    wall, cpu = clock() - t
    ok = result.status == "ok"
    chance = 1.0 / data.spec.num_classes
    return {"val": result.val_accuracy if ok else chance, "test": test.accuracy if ok else chance,
            "status": result.status, "epochs": result.epochs_run,
            "parameters": count_parameters(result.model), "wall_s": float(wall),
            "cpu_s": float(cpu)}  # fmt: skip


def scored(reward: Any, arch: Architecture) -> dict[str, Any]:
    """``reward.evaluate(arch)`` timed: its reward, status, steps, wall and CPU seconds."""
    t = clock()
    result = reward.evaluate(arch)
    wall, cpu = clock() - t
    return {"value": result.reward, "status": result.status, "steps": result.steps,
            "wall_s": float(wall), "cpu_s": float(cpu)}  # fmt: skip


def zero_training(arch: Architecture, data: Dataset) -> dict[str, Any]:
    """Parameters (of the final net) and forward FLOPs of ``arch``, each timed."""
    channels, size, _ = data.spec.input_shape
    t = clock()
    params = count_parameters(build_model(arch, in_channels=channels, input_size=size,
                                          config=FINAL_NET))  # fmt: skip
    p_wall, p_cpu = clock() - t
    t = clock()
    flops = forward_flops(arch.layers, in_channels=channels, input_size=size)
    f_wall, f_cpu = clock() - t
    return {"parameters": params, "flops": flops, "parameters_s": [float(p_wall), float(p_cpu)],
            "flops_s": [float(f_wall), float(f_cpu)]}  # fmt: skip


def check_teacher(config: Config, data: Dataset) -> None:
    """The teacher must have been meta-trained on this split (else its validation images may be
    ones it was meta-trained on)."""
    extra = load_meta_checkpoint(config.teacher)["extra"]
    want = {"dataset": config.dataset, "val_size": len(data.val), "seed": config.seed}
    for key, value in want.items():
        if extra.get(key, value) != value:
            raise ConfigError(f"teacher={config.teacher!r} was meta-trained with {key}="
                              f"{extra.get(key)!r}, this split has {value!r}")  # fmt: skip


def _units(ctx: Context, prefix: str, archs: Sequence[Architecture],
           compute: Callable[[Architecture], dict[str, Any]]) -> list[dict[str, Any]]:  # fmt: skip
    """``compute(arch)`` per architecture, each memoised under ``prefix:i:arch``."""
    bar = tqdm(archs, desc=prefix, disable=not ctx.progress)
    return [ctx.memo(f"{prefix}:{i}:{a}", lambda a=a: compute(a)) for i, a in enumerate(bar)]


def measured(ctx: Context, prefix: str, archs: Sequence[Architecture]) -> list[int]:
    """Indices of ``archs`` whose ``prefix`` unit is already memoised."""
    return [i for i, a in enumerate(archs) if ctx.has_memo(f"{prefix}:{i}:{a}")]


# ------------------------------------------------------------------ the experiment
def run(config: Config, ctx: Context) -> Outcome:
    """Choose the architectures, measure the truth and every proxy, correlate, report."""
    design, data = design_data(config, ctx)
    cap = design.cost_cap()
    full = get_space(config.dataset)
    sel = select_architectures(config, cap)
    archs = sel.archs

    def at(divisor: int) -> list[Architecture]:
        return [rescale(a, full, config.width_divisor, divisor) for a in archs]

    final = at(config.final_width_divisor)
    zero = _units(ctx, "zero", final, lambda a: zero_training(a, data))

    check_teacher(config, data)
    gtn_spec = RewardSpec(name="gtn", dataset=config.dataset, data_root=ctx.data_root,
                          score_size=config.score_size, seed=config.seed, device=str(ctx.device),
                          gtn_checkpoint=config.teacher)  # fmt: skip
    gtn_reward = cache(lambda: build_reward(gtn_spec))
    gtn = {d: _units(ctx, f"gtn/{d}", at(d), lambda a: scored(gtn_reward(), a))
           for d in config.gtn_width_divisors}  # fmt: skip

    # The search's ``real`` reward (``metaqnn.rewards.spec``: MetaQNN's recipe for
    # ``real_epochs`` epochs, all validation images) on this experiment's data: the design's
    # split, cut to ``train_size`` when set. Built on first use: a resumed run may need none.
    real_recipe = TrainConfig(epochs=config.real_epochs, seed=config.seed)
    real_reward = cache(lambda: RealDataReward(data, real_recipe, NetConfig(), device=ctx.device))

    search = at(config.width_divisor)
    real = _units(ctx, "real", search, lambda a: scored(real_reward(), a))
    match_width = (config.width_divisor if config.width_divisor in gtn
                   else config.gtn_width_divisors[0])  # fmt: skip

    def matched() -> int:
        per_step = sum(r["cpu_s"] for r in real) / max(1, sum(r["steps"] for r in real))
        return max(1, round(statistics.mean(g["cpu_s"] for g in gtn[match_width]) / per_step))

    steps = config.matched_steps or ctx.memo("matched_steps", matched)
    score = Split(data.val.x[: config.score_size], data.val.y[: config.score_size])
    short_data = dataclasses.replace(data, val=score)
    recipe = TrainConfig(steps=steps, seed=config.seed, max_restarts=0)  # MetaQNN's, shorter
    short = cache(lambda: RealDataReward(short_data, recipe, NetConfig(), device=ctx.device))
    matched_rows = _units(ctx, f"real{steps}", search, lambda a: scored(short(), a))

    def truth_of(i: int) -> dict[str, Any]:
        return ctx.memo(f"truth:{i}:{final[i]}", lambda: truth_run(final[i], data, config,
                                                                   ctx.device))  # fmt: skip

    if config.interim:  # the measured subset, every proxy cut to it
        keep = measured(ctx, "truth", final)
        if len(keep) < 3:
            raise ConfigError(f"interim=true: {len(keep)} of {len(final)} truths are measured "
                              "so far; an interim report needs at least 3")  # fmt: skip
        truth_rows = [truth_of(i) for i in keep]
        cut = lambda rows: [rows[i] for i in keep]  # noqa: E731
        archs, final, zero, real, matched_rows = map(cut, (archs, final, zero, real, matched_rows))
        gtn = {d: cut(rows) for d, rows in gtn.items()}
        sel = dataclasses.replace(sel, archs=archs, depths=cut(sel.depths),
                                  strata=cut(sel.strata), final_flops=cut(sel.final_flops),
                                  order=list(range(len(keep))))  # fmt: skip
    else:  # measured in the draw order: an unfinished run's truths spread over the strata
        bar = tqdm(sel.order, desc="truth", disable=not ctx.progress)
        done = {i: truth_of(i) for i in bar}
        truth_rows = [done[i] for i in range(len(final))]

    # ------------------------------------------------------------------ statistics, report
    proxy = ProxyScores.from_rows
    proxies = [proxy(f"GTN reward, widths / {d}", "gtn", gtn[d],
                     f"{gtn[d][0]['steps']} synthetic steps, {config.score_size} val images", d)
               for d in config.gtn_width_divisors]  # fmt: skip
    real_steps = statistics.mean(r["steps"] for r in real)
    proxies.append(proxy(f"real reward, {epoch_label(config.real_epochs)}", "real", real,
                         f"MetaQNN's recipe, {real_steps:.0f} steps (restarts included), all "
                         "val images", config.width_divisor))  # fmt: skip
    proxies.append(proxy(f"real data, {steps} steps", "real", matched_rows,
                         f"Adam 1e-3, {steps} steps (GTN /{match_width}'s cost), "
                         f"{config.score_size} val images", config.width_divisor))  # fmt: skip
    proxies += zero_training_proxies(zero)
    truth = [t[config.reference] for t in truth_rows]
    top_k = [k for k in config.top_k if k < len(truth) or not config.interim]  # few so far
    stats = correlate(proxies, truth, ks=top_k, resamples=config.resamples)
    advice = recommend(proxies, stats, config.dataset)
    if config.interim:
        advice["line"] = (f"Interim, {len(truth)} of {config.architectures} architectures: "
                          + advice["line"])  # fmt: skip
    truth_name = (
        f"truth: {config.reference} accuracy, {config.recipe} recipe, "
        f"{config.final_epochs} epochs, widths / {config.final_width_divisor}"
    )
    figures = scatter_figures(proxies, truth, stats, ctx.out, truth_name)

    t_cpu = [t["cpu_s"] for t in truth_rows]
    failed = sum(t["status"] != "ok" for t in truth_rows)
    cap_text = (f"within the design's cost cap ({cap.describe()})" if cap
                else "without a cost cap (the dataset's preset has none)")  # fmt: skip
    rows = [{"architecture": str(a), "final_architecture": str(final[i]), "depth": sel.depths[i],
             "stratum": list(sel.strata[i]), "families": families(a),
             "final_mflops": sel.final_flops[i] / 1e6, "truth_val": truth_rows[i]["val"],
             "truth_test": truth_rows[i]["test"], "truth_status": truth_rows[i]["status"],
             "truth_cpu_s": truth_rows[i]["cpu_s"], "truth_wall_s": truth_rows[i]["wall_s"],
             "truth_epochs": truth_rows[i]["epochs"], "parameters": zero[i]["parameters"],
             **{p.name: p.values[i] for p in proxies},
             **{f"{p.name} cpu_s": p.cpu_s[i] for p in proxies}}
            for i, a in enumerate(archs)]  # fmt: skip
    lines = [
        f"{len(archs)} architectures of the `{config.dataset}` space at widths / "
        f"{config.width_divisor} (the search width), {cap_text}, chosen from {sel.pool} distinct "
        f"draws of the cost-masked sampler (seed {config.arch_seed}) across "
        f"{config.depth_strata} depth x {config.flops_strata} FLOPs quantile strata. Truth: "
        f"each trained at widths / {config.final_width_divisor} with the `{config.recipe}` "
        f"recipe for {config.final_epochs} epochs on {len(data.train)} training images "
        f"(seed {config.truth_seed}; the proxies use seed {config.seed}, other recipes and "
        f"widths: independent runs); ranked by its **{config.reference}** accuracy "
        f"({len(data.val)} validation, {len(data.test)} test images). Truth CPU time per "
        f"architecture: mean {statistics.mean(t_cpu):.1f} s, max {max(t_cpu):.1f} s, "
        f"{sum(t_cpu):.0f} s in all; {failed} failed (scored at chance); "
        f"{config.reference} accuracy {min(truth):.4f}-{max(truth):.4f}, median "
        f"{statistics.median(truth):.4f}. Costs are CPU seconds of this process per "
        f"architecture (GTN: teaching and scoring; the teacher's synthetic batches are made "
        f"once); intervals: {config.resamples} bootstrap resamples, seed 0.",
        "",
        proxy_table(proxies, stats, top_k, advice["floor"]),
        "",
        f"**{advice['line']}**",
        "",
        "Strata of the chosen architectures:",
        "",
        strata_table(sel.strata, sel.depths, sel.final_flops),
        "",
        *(f"![{f}]({f})" for f in figures),
        "",
        architecture_table(rows, proxies, config.reference),
    ]
    if config.interim:
        lines[:0] = [f"**Interim report**: the truth of {len(archs)} of the "
                     f"{config.architectures} architectures (the first ones drawn, spread over "
                     "the strata); the run is not finished.", ""]  # fmt: skip
    summary = {
        "architectures": len(archs), "interim": config.interim, "reference": config.reference,
        "cost_cap": cap.to_dict() if cap else None, "matched_steps": steps,
        "proxies": proxy_rows(proxies, stats, advice["floor"]), "recommendation": advice,
        "truth": {"median": statistics.median(truth), "failed": failed,
                  "cpu_s_mean": statistics.mean(t_cpu), "cpu_s_total": sum(t_cpu),
                  "wall_s_total": sum(t["wall_s"] for t in truth_rows)},
    }  # fmt: skip
    return Outcome("\n".join(lines), summary, rows)


if __name__ == "__main__":
    raise SystemExit(main(NAME, Config, run, doc=__doc__))
