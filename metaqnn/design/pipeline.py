"""A design run, resumable phase by phase: plan, teacher, search, final training, outputs.

Everything lives in the run folder: ``design.json`` (the config, the plan, the time each
phase spent, the results so far; written atomically after every unit of work), ``teacher/``
(a GTN run), ``search/`` (a search store), ``finals/`` (one checkpoint per trained model),
``timeline.jsonl`` (the search's rewards against the run's clock), and at the end
``winner.pt``, ``winner.ts.pt``, ``report.md``, ``summary.json`` and the figures. Run it
again with the same folder (``--resume``) after a stop or a ``kill -9``: finished units are
kept, and the time they took stays spent.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envs.layers import Architecture
from envs.space import SearchSpace, get_space
from gtn.meta import checkpoint_file, load_meta_checkpoint
from metaqnn.core.data import Dataset, load_dataset
from metaqnn.core.nets import NetConfig
from metaqnn.core.precision import PRECISIONS
from metaqnn.core.recipes import RECIPES, recipe_config
from metaqnn.core.spaces import space_for
from metaqnn.core.training import TrainConfig, steps_per_epoch
from metaqnn.design.budget import (
    SHARES_GIVEN_TEACHER,
    SHARES_WITH_TEACHER,
    BudgetPlan,
)
from metaqnn.design.cost import CostCap, cost_width, narrowest_divisor, plan_cost_cap
from metaqnn.design.finals import (
    Candidate,
    full_width,
    rescale,
    widest_fitting,
)
from metaqnn.design.picks import check_pick, order
from metaqnn.design.presets import DatasetPreset, get_preset
from metaqnn.design.searching import check_agent
from metaqnn.errors import CheckpointError, ConfigError
from metaqnn.teacher.run import TeacherRun, train_teacher

STATE = "design.json"
#: The search rewards a design can use.
SEARCH_REWARDS = ("gtn", "real")
#: How final models are built: MetaQNN's nets (batch norm, ReLU, Xavier, MetaQNN's dropout).
FINAL_NET = NetConfig()


@dataclass(frozen=True)
class DesignConfig:
    """What ``metaqnn design`` runs (stored in ``design.json``; a resume uses the stored one)."""

    dataset: str = "digits"
    """Dataset name (it must have a preset in :data:`metaqnn.design.presets.PRESETS`)."""
    budget_s: float = 600.0
    """Wall-clock budget of the whole run, in seconds."""
    logdir: str = "runs/design"
    """The run folder."""
    data_root: str | None = None
    """Data root (None: ``$METAQNN_DATA`` or the default)."""
    download: bool = False
    """Let torchvision download missing dataset files."""
    device: str = "cpu"
    """Torch device of every phase."""
    seed: int = 0
    """Seed of the split, the teacher, the search and the final training."""
    gtn_checkpoint: str | None = None
    """A teacher to reuse (a GTN run folder or checkpoint); None: meta-train one."""
    recipe: str = "strong"
    """The final recipe (a key of :data:`metaqnn.core.recipes.RECIPES`)."""
    epochs: int | None = None
    """Most epochs of the final recipe (None: the recipe's); fewer when the budget is short."""
    finalists: int | None = None
    """Best designs of the search trained at full width (None: the dataset preset's)."""
    width_divisor: int | None = None
    """Search width (None: the dataset preset's)."""
    score_size: int | None = 1000
    """Validation images each GTN reward scores (None: all)."""
    shares: tuple[float, float, float] | None = None
    """Budget shares of teacher, search and final training (None: the dataset preset's when
    a teacher is meta-trained, else the defaults)."""
    agent: str = "qlearning"
    """The search agent (a key of :data:`metaqnn.design.searching.AGENTS`): ``qlearning`` or
    ``random`` (random search)."""
    reward: str = "gtn"
    """The search reward: ``gtn`` (GTN-synthetic training) or ``real`` (real-data training for
    ``real_epochs`` epochs of MetaQNN's recipe, at the search width)."""
    real_epochs: int = 1
    """Epochs of the ``real`` reward."""
    baselines: bool = True
    """Train the hand-designed baselines in the final phase."""
    final_width_divisor: int | None = None
    """Train the finalists at the space's widths divided by this (None: full width, or the
    widest that fits the time left)."""
    cost_multiple: float | None = None
    """Cost-aware search: a design may cost at most this many times the forward FLOPs of the
    costliest baseline, at the cost width (None: the preset's; 0: no cap)."""
    cost_width_divisor: int | None = None
    """The width at which the cap is counted, as a divisor of the space's widths (None: the
    preset's); it is narrowed to one that divides the search's (:func:`cost_width`)."""
    finalist_pick: str | None = None
    """How the finalists are picked from the search's ranking (None: the dataset preset's):
    a key of :data:`metaqnn.design.picks.FINALIST_PICKS`, ``reward`` (the best by search
    reward) or ``heads`` (the classifier heads in turn)."""
    folds: int | None = None
    """How the final phase picks the winner (None: the dataset preset's): 0 or 1, by
    validation accuracy; k of 2 or more, by k-fold cross-validation over the training and
    validation images, each model then refitted on all of them (:mod:`.selection`)."""
    precision: str = "fp32"
    """Precision of the final training (finalists, hand baselines and their epoch probes): a
    key of :data:`metaqnn.core.precision.PRECISIONS` (``bf16``: autocast)."""
    space: str | None = None
    """Search-space preset (None: the dataset's own; ``fashion-mnist-fc14`` lets FC layers
    read maps of up to 14x14, where the hand baselines put theirs)."""

    def __post_init__(self) -> None:
        if isinstance(self.shares, list):  # read back from JSON
            object.__setattr__(self, "shares", tuple(self.shares))
        preset = get_preset(self.dataset)
        for name in ("finalists", "folds", "finalist_pick"):  # stored resolved for a resume
            if getattr(self, name) is None:
                object.__setattr__(self, name, getattr(preset, name))
        if self.recipe not in RECIPES:
            raise ConfigError(f"unknown recipe {self.recipe!r}; choose from {', '.join(RECIPES)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; choose from "
                              f"{', '.join(PRECISIONS)}")  # fmt: skip
        if self.finalists < 1 or (self.epochs is not None and self.epochs < 1):
            raise ConfigError(f"--finalists {self.finalists} and --epochs {self.epochs} must be "
                              "at least 1")  # fmt: skip
        for name in ("width_divisor", "final_width_divisor", "cost_width_divisor"):
            value = getattr(self, name)
            if value is not None and value < 1:
                flag = "--" + name.replace("_", "-")
                raise ConfigError(f"{flag} {value} must be at least 1")
        if self.folds < 0:
            raise ConfigError(f"--folds {self.folds} must be at least 0 (0: the validation "
                              "split; 2 or more: cross-validation)")  # fmt: skip
        if self.seed < 0:
            raise ConfigError(f"--seed {self.seed} must be >= 0")
        check_agent(self.agent)
        check_pick(self.finalist_pick)
        if self.reward not in SEARCH_REWARDS:
            raise ConfigError(f"unknown design reward {self.reward!r}; choose from "
                              f"{', '.join(SEARCH_REWARDS)}")  # fmt: skip
        if self.real_epochs < 1:
            raise ConfigError(f"--real-epochs {self.real_epochs} must be at least 1")
        if self.cost_multiple is not None and not (
            math.isfinite(self.cost_multiple) and self.cost_multiple >= 0
        ):
            raise ConfigError(f"--cost-multiple {self.cost_multiple} must be a number of at "
                              "least 0 (0: no cost cap)")  # fmt: skip
        if self.space is not None:
            space_for(self.space, self.dataset)  # a known preset, for the dataset's images

    @property
    def preset(self) -> DatasetPreset:
        """The dataset's preset."""
        return get_preset(self.dataset)

    @property
    def divisor(self) -> int:
        """The search width divisor in force."""
        return self.width_divisor or self.preset.width_divisor

    def full_space(self) -> SearchSpace:
        """The search space at full width: ``space``, else the dataset's own."""
        return get_space(self.space or self.dataset)

    @property
    def needs_teacher(self) -> bool:
        """Whether the run meta-trains a teacher (a GTN reward and no teacher given)."""
        return self.reward == "gtn" and not self.gtn_checkpoint

    def cost_cap(self) -> CostCap | None:
        """The search's cost cap (None: off), from the baselines' FLOPs alone."""
        preset = self.preset
        multiple = preset.cost_multiple if self.cost_multiple is None else self.cost_multiple
        divisor = cost_width(self.cost_width_divisor or preset.cost_width_divisor, self.divisor)
        return plan_cost_cap(preset.baselines, self.full_space(), multiple, divisor)

    @property
    def shares_in_force(self) -> tuple[float, float, float]:
        """The shares given, else the dataset preset's with a teacher to meta-train, else the
        defaults."""
        with_teacher = self.preset.shares or SHARES_WITH_TEACHER
        default = with_teacher if self.needs_teacher else SHARES_GIVEN_TEACHER
        return tuple(self.shares or default)

    def plan(self) -> BudgetPlan:
        """The split of the budget."""
        return BudgetPlan.split(self.budget_s, self.shares_in_force)


class DesignState:
    """``design.json``: the config, the plan, the seconds each phase spent, the results."""

    def __init__(self, run_dir: Path, data: dict[str, Any]) -> None:
        self.run_dir, self.data = run_dir, data

    @classmethod
    def create(cls, run_dir: Path, config: DesignConfig) -> DesignState:
        """A new state in ``run_dir`` (which must not hold a design run)."""
        if (run_dir / STATE).exists():
            raise ConfigError(f"{run_dir} already holds a design run: resume it with --resume "
                              f"{run_dir}, or pick another --logdir")  # fmt: skip
        run_dir.mkdir(parents=True, exist_ok=True)
        stored = {**dataclasses.asdict(config), "shares": list(config.shares_in_force)}
        state = cls(run_dir, {"config": stored, "spent": {}, "phases": {}, "finals": {}})
        state.save()
        return state

    @classmethod
    def open(cls, run_dir: Path) -> DesignState:
        """The state of an existing run."""
        path = run_dir / STATE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{run_dir} holds no design run ({STATE} is missing)") from None
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
        if not {"config", "spent", "phases", "finals"} <= set(data):
            raise CheckpointError(f"{path} is not a design state (keys {sorted(data)})")
        return cls(run_dir, data)

    @property
    def config(self) -> DesignConfig:
        """The run's config. A run from before cross-validated selection (no ``folds``
        stored) keeps the validation split and the shares of its time, whatever the presets
        say now."""
        stored = dict(self.data["config"])
        if "folds" not in stored:
            teacher = stored.get("reward", "gtn") == "gtn" and not stored.get("gtn_checkpoint")
            default = SHARES_WITH_TEACHER if teacher else SHARES_GIVEN_TEACHER
            stored.update(folds=0, shares=stored.get("shares") or default)
        stored.setdefault("finalist_pick", "reward")  # a run from before picks
        return DesignConfig(**stored)

    def plan(self) -> BudgetPlan:
        """The split of the budget, with the final share cut to what the final training can
        use (:func:`final_need_s`, measured when the run was planned) and the rest given to
        the search."""
        return self.config.plan().reserve_final(self.data.get("final_need_s"))

    def search_left(self) -> float:
        """Seconds the search may still run: until the run's clock (:meth:`spent`) reaches
        the end of the teacher's and the search's shares of :meth:`plan`, so the time the
        plan and the teacher did not use is the search's."""
        plan = self.plan()
        return plan.teacher_s + plan.search_s - self.spent()

    def spent(self) -> float:
        """Seconds spent so far, all phases."""
        return float(sum(self.data["spent"].values()))

    def add_time(self, phase: str, seconds: float) -> None:
        """Count ``seconds`` against ``phase`` and save."""
        self.data["spent"][phase] = self.data["spent"].get(phase, 0.0) + seconds
        self.save()

    def save(self) -> None:
        """Write ``design.json`` atomically."""
        tmp = self.run_dir / f".{STATE}.tmp"
        tmp.write_text(json.dumps(self.data, indent=2, default=float))
        os.replace(tmp, self.run_dir / STATE)


def load_data(config: DesignConfig) -> Dataset:
    """The run's dataset (its seed fixes the validation split)."""
    return load_dataset(config.dataset, root=config.data_root, device=config.device,
                        seed=config.seed, download=config.download)  # fmt: skip


def final_train_config(config: DesignConfig, epochs: float | None = None,
                       train_size: int | None = None) -> TrainConfig:  # fmt: skip
    """The final recipe at ``epochs`` (default: the config's or the recipe's).

    A fractional ``epochs`` (the budget binds) becomes a budget of steps, ``epochs`` times the
    steps of one pass over ``train_size`` images, over which the recipe's schedule runs.
    """
    want = epochs or config.epochs
    train = recipe_config(config.recipe, epochs=None if want is None else math.ceil(want),
                          seed=config.seed)  # fmt: skip
    train = dataclasses.replace(train, precision=config.precision)
    if want is None or want == int(want):
        return train
    if train_size is None:
        raise ValueError(f"epochs={want} is a fraction: give train_size to count its steps")
    steps = max(1, round(want * steps_per_epoch(train_size, train.batch_size)))
    return dataclasses.replace(train, steps=steps)


def check_teacher(config: DesignConfig) -> None:
    """A given teacher must exist and teach the run's dataset."""
    try:
        state = load_meta_checkpoint(checkpoint_file(config.gtn_checkpoint))
    except (ValueError, OSError) as exc:
        raise CheckpointError(f"--gtn-checkpoint {config.gtn_checkpoint}: {exc}") from None
    taught = state.get("extra", {}).get("dataset")
    if taught not in (None, config.dataset):
        raise ConfigError(f"--gtn-checkpoint {config.gtn_checkpoint} teaches {taught!r}, this "
                          f"design is on {config.dataset!r}")  # fmt: skip


def teacher_phase(state: DesignState, *, progress: bool) -> Path | None:
    """A given teacher, or one meta-trained (or resumed) within the teacher share; None for a
    search without the GTN reward."""
    config = state.config
    if config.reward != "gtn":
        return None
    if config.gtn_checkpoint:
        return Path(config.gtn_checkpoint)
    run_dir = state.run_dir / "teacher"
    phase = state.data["phases"].get("teacher")
    if phase == "done":
        return run_dir
    left = config.plan().teacher_s - state.data["spent"].get("teacher", 0.0)
    if left <= 1:
        if checkpoint_file(run_dir).is_file():
            state.data["phases"]["teacher"] = "done"
            state.save()
            return run_dir
        raise ConfigError("the teacher share of the budget is spent and there is no teacher")
    # the limit covers the outer steps; loading and saving take the rest (a tenth)
    fields = {**config.preset.teacher, "eval_archs": 0, "eval_paper_learner": False,
              "progress": progress, "max_minutes": 0.9 * left / 60,
              "device": config.device}  # fmt: skip
    if checkpoint_file(run_dir).is_file():
        run = TeacherRun(resume=str(run_dir), data_root=config.data_root, **fields)
    else:
        run = TeacherRun(dataset=config.dataset, data_root=config.data_root,
                         download=config.download, seed=config.seed, logdir=str(run_dir),
                         space=config.space, **fields)  # fmt: skip
    start = time.perf_counter()
    try:
        train_teacher(run)
    finally:
        state.add_time("teacher", time.perf_counter() - start)
    state.data["phases"]["teacher"] = "done"
    state.save()
    return run_dir


def baseline_candidates(config: DesignConfig) -> list[Candidate]:
    """The hand-designed baselines (none with ``baselines=False``)."""
    return [Candidate(name, "baseline", str(Architecture.parse(arch)))
            for name, arch in config.preset.baselines.items() if config.baselines]  # fmt: skip


def design_candidates(config: DesignConfig, ranked: list[tuple[str, float]],
                      max_flops: float | None = None,
                      cost: CostCap | None = None) -> Iterator[Candidate]:  # fmt: skip
    """The distinct designs, best first in the order of the config's finalist pick
    (:mod:`.picks`; named ``design 1``, ``design 2``, ...): at the
    config's ``final_width_divisor``, else at full width, or, with ``max_flops``, at the
    widest scaling whose forward pass costs at most that, but never narrower than the cost
    width of the search's ``cost`` cap for a design within it. A design that widens into a
    baseline is skipped."""
    space = config.full_space()
    shape = {"in_channels": space.input_channels, "input_size": space.input_size}
    seen = {c.architecture for c in baseline_candidates(config)}
    n = 0
    for arch, reward in order(config.finalist_pick, ranked):
        narrow = Architecture.parse(arch)
        if config.final_width_divisor is not None:
            divisor = config.final_width_divisor
            wide = rescale(narrow, space, config.divisor, divisor)
        elif max_flops is None:
            wide, divisor = full_width(narrow, space, config.divisor), 1
        else:
            floor = narrowest_divisor(narrow, cost, space, config.divisor)
            wide, divisor = widest_fitting(narrow, space, config.divisor, max_flops, **shape,
                                           narrowest=floor)  # fmt: skip
        if str(wide) in seen:
            continue
        seen.add(str(wide))
        n += 1
        yield Candidate(f"design {n}", "design", str(wide), arch, reward, divisor)


def candidates(config: DesignConfig, ranked: list[tuple[str, float]],
               max_flops: float | None = None,
               cost: CostCap | None = None) -> list[Candidate]:  # fmt: skip
    """The baselines, then the ``finalists`` best distinct designs
    (:func:`design_candidates`)."""
    designs = design_candidates(config, ranked, max_flops, cost)
    return [*baseline_candidates(config), *itertools.islice(designs, config.finalists)]


def reset_run(run_dir: Path) -> None:
    """Delete a previous run folder (``--fresh``)."""
    if (run_dir / STATE).exists():
        shutil.rmtree(run_dir)
