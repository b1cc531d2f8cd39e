"""How far does one training's test error move with its seed alone? Each architecture is
trained ``seeds`` times with the design run's final recipe on the same images (with
``refit``: the training and validation images together, as a cross-validated design run
refits its models), and tested each time; the spread is the noise under any single-seed
comparison of a design with a hand net on that test set.

    python -m experiments seed_spread --data-root ../shared/data

Writes ``results.md`` (per architecture: the test error of every seed, the mean, the sd, the
mean's 95 % interval) and ``results.json``. ``--quick``: 2 architectures, 2 seeds, 1 epoch.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from envs.layers import Architecture
from experiments.common.checks import at_least
from experiments.common.learner_zoo import mean_std
from experiments.harness import Context, Outcome
from metaqnn.core.data import load_dataset
from metaqnn.core.recipes import RECIPES, recipe_config
from metaqnn.core.training import evaluate, train_architecture
from metaqnn.design.pipeline import FINAL_NET
from metaqnn.design.selection import merged
from metaqnn.errors import ConfigError
from metaqnn.runinfo import run_metadata

NAME = "seed_spread"


@dataclass(frozen=True)
class Config:
    """The architectures, the recipe and the seeds."""

    dataset: str = "digits"
    """Dataset name (its default validation split, split seed ``split_seed``)."""
    architectures: dict[str, str] = field(default_factory=dict)
    """Name -> architecture, at the width it is trained."""
    recipe: str = "strong"
    """The final recipe (a key of :data:`metaqnn.core.recipes.RECIPES`)."""
    epochs: int = 15
    """Epochs of the recipe."""
    seeds: int = 6
    """Trainings per architecture (seeds 0 .. seeds - 1)."""
    split_seed: int = 0
    """Seed of the validation split."""
    refit: bool = True
    """Train on training and validation images together (else on the training split)."""

    def __post_init__(self) -> None:
        at_least(self, ("epochs", "seeds"))
        if self.recipe not in RECIPES:
            raise ConfigError(f"unknown recipe {self.recipe!r}; choose from {', '.join(RECIPES)}")
        if not self.architectures:
            raise ConfigError("architectures: give at least one name = architecture")
        for name, arch in self.architectures.items():
            try:
                Architecture.parse(arch)
            except ValueError as exc:
                raise ConfigError(f"architectures.{name}: {exc}") from None


def _interval(errors: list[float]) -> tuple[float, float]:
    """Mean +- 1.96 standard errors (normal approximation)."""
    mean, sd = mean_std(errors)
    half = 1.96 * sd / math.sqrt(len(errors))
    return mean - half, mean + half


def run(config: Config, ctx: Context) -> Outcome:
    """Train every architecture ``seeds`` times and test each training."""
    start_all = time.perf_counter()
    data = load_dataset(config.dataset, root=ctx.data_root, device=ctx.device,
                        seed=config.split_seed)  # fmt: skip
    train = merged(data) if config.refit else data.train
    check = train if config.refit else data.val  # the split divergence is checked on
    rows = []
    for name, arch in config.architectures.items():
        errors = []
        for seed in range(config.seeds):

            def one(arch: str = arch, seed: int = seed) -> dict[str, float]:
                recipe = recipe_config(config.recipe, epochs=config.epochs, seed=seed)
                start = time.perf_counter()
                result = train_architecture(Architecture.parse(arch), train, check, recipe,
                                            net_config=FINAL_NET, device=ctx.device)  # fmt: skip
                test = evaluate(result.model, data.test).accuracy
                ok = result.status == "ok"
                return {"test_error_pct": 100 * (1 - test) if ok else math.nan,
                        "status": result.status, "wall_s": time.perf_counter() - start}  # fmt: skip

            record = ctx.memo(f"{name}|{arch}|{seed}|{config.recipe}|{config.epochs}|"
                              f"{config.split_seed}|{config.refit}", one)  # fmt: skip
            errors.append(record["test_error_pct"])
        finite = [e for e in errors if math.isfinite(e)]
        low, high = _interval(finite) if finite else (math.nan, math.nan)
        mean, sd = mean_std(finite)
        rows.append({
            "name": name, "architecture": arch, "errors_pct": errors,
            "mean_pct": mean, "sd_pct": sd if len(finite) > 1 else math.nan,
            "ci95_pct": [low, high], "failed": len(errors) - len(finite),
        })  # fmt: skip
        print(f"{name}: {errors}", flush=True)
    machine = run_metadata(str(ctx.device))
    images = len(data.test)
    table = ["| architecture | test error % per seed | mean | sd | mean's 95 % interval |",
             "|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        per_seed = ", ".join(f"{e:.2f}" for e in r["errors_pct"])
        low, high = r["ci95_pct"]
        table.append(f"| {r['name']}: `{r['architecture']}` | {per_seed} | {r['mean_pct']:.2f} "
                     f"| {r['sd_pct']:.2f} | [{low:.2f}, {high:.2f}] |")  # fmt: skip
    trained_on = "training and validation images" if config.refit else "the training split"
    markdown = "\n".join([
        f"# Seed spread of the final recipe on {config.dataset}", "",
        f"Each architecture trained {config.seeds} times ({config.epochs} epochs of "
        f"`{config.recipe}`, seeds 0-{config.seeds - 1}) on {trained_on} ({len(train)} "
        f"images), tested on {images} images (one image: {100 / images:.2f} points). The "
        "interval holds the training seed's noise only: every row is tested on the same "
        "images, so a gap between rows is not shown to hold on other test images.", "",
        *table, "",
        f"Machine: {machine['device_name']}, torch {machine['torch']}, commit "
        f"{machine['git_commit']}; {time.perf_counter() - start_all:.0f} s.",
    ])  # fmt: skip
    summary = {r["name"]: {"mean_pct": r["mean_pct"], "sd_pct": r["sd_pct"]} for r in rows}
    return Outcome(markdown=markdown, summary=summary, rows=rows)
