"""``run_design``: plan, teacher, search, final training, outputs; read top to bottom.

Each phase keeps to its share of the budget and records the seconds it spent in
``design.json``; the final phase gets whatever the earlier ones left, and chooses the epochs
of the final recipe so that every model fits (90 % of the time left, from measured epoch
costs). A stop or ``kill -9`` loses at most the unit of work in flight.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np

from envs.layers import Architecture
from envs.space import get_space
from metaqnn.core.export import export_checkpoint
from metaqnn.design.budget import format_duration
from metaqnn.design.finals import Candidate, FinalResult, choose_epochs, epoch_seconds, train_final
from metaqnn.design.pipeline import (
    FINAL_NET,
    DesignConfig,
    DesignState,
    candidates,
    check_budget,
    check_teacher,
    final_train_config,
    load_data,
    teacher_phase,
)
from metaqnn.design.report import write_report
from metaqnn.errors import ConfigError
from metaqnn.rewards.spec import RewardSpec, build_reward
from metaqnn.search.loop import Search, SearchConfig
from metaqnn.search.schedule import PAPER_STAGES, EpsilonSchedule
from metaqnn.search.store import DB_NAME, ModelRecord, SearchStore
from metaqnn.search.workers import InlineBackend

#: Sampled architectures timed to measure the GTN reward's cost before the search.
COST_PROBES = 3


class TimelineLogger:
    """Appends each recorded model to ``timeline.jsonl`` with the run's clock (seconds of
    budget spent when it was recorded): the anytime curve of the report."""

    def __init__(self, path: Path, clock_start: float) -> None:
        self.path, self.clock_start, self.start = path, clock_start, time.perf_counter()

    def log(self, record: ModelRecord, search: Search) -> None:
        """Append one model."""
        row = {"t": self.clock_start + time.perf_counter() - self.start,
               "reward": record.reward, "architecture": record.architecture}  # fmt: skip
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def close(self) -> None:
        """Nothing to release."""


def _search(state: DesignState, teacher: Path, *, progress: bool) -> list[tuple[str, float]]:
    """The Q-learning search with the GTN reward, within the search share. Returns the ok
    designs, best first."""
    config, run_dir = state.config, state.run_dir / "search"
    if state.data["phases"].get("search") != "done":
        left = config.plan().search_s - state.data["spent"].get("search", 0.0)
        start = time.perf_counter()
        try:
            if (run_dir / DB_NAME).exists():
                search = Search.resume(run_dir)
            else:
                search = _new_search(state, teacher, run_dir)
            search.logger = TimelineLogger(state.run_dir / "timeline.jsonl", state.spent())
            limit = left - (time.perf_counter() - start)
            print(f"searching for up to {format_duration(max(limit, 0))}: "
                  f"{search.schedule.total} models planned", flush=True)  # fmt: skip
            if limit > 0:
                search.run(time_limit_s=limit, progress=progress)
            if search.done < config.finalists:  # a design needs designs: a few past the share
                search.run(max_models=config.finalists - search.done, progress=progress)
            search.close()
        finally:
            state.add_time("search", time.perf_counter() - start)
        state.data["phases"]["search"] = "done"
        state.save()
    store = SearchStore.open(run_dir)
    models = [m for m in store.models() if m.status == "ok"]
    store.close()
    if not models:
        raise ConfigError(f"the search in {run_dir} recorded no model: give it a larger budget")
    return [(m.architecture, m.reward) for m in sorted(models, key=lambda m: -m.reward)]


def _new_search(state: DesignState, teacher: Path, run_dir: Path) -> Search:
    """Measure the reward's cost at the search width, size the schedule to the share, start."""
    config = state.config
    spec = RewardSpec(name="gtn", dataset=config.dataset, data_root=config.data_root,
                      seed=config.seed, device=config.device, gtn_checkpoint=str(teacher),
                      score_size=config.score_size)  # fmt: skip
    start = time.perf_counter()
    reward = build_reward(spec)
    space = get_space(config.dataset).scale_widths(config.divisor)
    rng = np.random.default_rng(config.seed + 1)
    probe = time.perf_counter()
    for _ in range(COST_PROBES):
        reward.evaluate(space.sample(rng))
    per_model = (time.perf_counter() - probe) / COST_PROBES
    left = config.plan().search_s - (time.perf_counter() - start)
    planned = max(10, math.floor(0.9 * left / per_model))
    schedule = EpsilonSchedule.scaled(planned / sum(n for _, n in PAPER_STAGES)).to_spec()
    state.data["search"] = {"seconds_per_model": per_model, "planned_models": planned,
                            "schedule": schedule, "width_divisor": config.divisor}  # fmt: skip
    state.save()
    print(f"GTN reward at widths / {config.divisor}: {per_model:.2f} s per model; MetaQNN's "
          f"schedule scaled to {planned} models", flush=True)  # fmt: skip
    search_config = SearchConfig(reward=spec, width_divisor=config.divisor, schedule=schedule,
                                 seed=config.seed)  # fmt: skip
    return Search.create(search_config, run_dir, backend=InlineBackend(reward=reward))


def _finals(state: DesignState, data, pool: list[Candidate], *, progress: bool) -> list[dict]:
    """Train every candidate with the final recipe at epochs that fit the time left."""
    config = state.config
    done = state.data["finals"]
    todo = [c for c in pool if c.name not in done]
    if todo and "final_epochs" not in state.data:
        start = time.perf_counter()
        train = final_train_config(config)
        costs = [epoch_seconds(_arch(c), data, train, FINAL_NET, config.device) for c in todo]
        state.add_time("final", time.perf_counter() - start)
        left = config.budget_s - state.spent()
        epochs = choose_epochs(left, costs, train.epochs)
        if epochs < 1:
            raise ConfigError(
                f"{format_duration(left)} of the budget is left and one epoch of the "
                f"{len(todo)} final models takes about {format_duration(sum(costs))}: resume "
                "with a larger --budget"
            )
        state.data["final_epochs"] = epochs
        state.data["final_epoch_costs"] = dict(zip([c.name for c in todo], costs, strict=True))
        state.save()
        print(f"final training: {len(todo)} models x {epochs} epochs of the {config.recipe!r} "
              f"recipe, about {format_duration(epochs * sum(costs))}", flush=True)  # fmt: skip
    train = final_train_config(config, state.data.get("final_epochs"))
    finals = state.run_dir / "finals"
    finals.mkdir(exist_ok=True)
    for c in todo:
        slug = c.name.replace(":", "").replace(" ", "-")
        result = train_final(c, data, train, FINAL_NET, config.device, finals / f"{slug}.pt",
                             progress=progress)  # fmt: skip
        done[c.name] = dataclasses.asdict(result)
        state.add_time("final", result.wall_s)
        print(f"{c.name}: {c.architecture} val {result.val_accuracy:.4f} test "
              f"{result.test_accuracy:.4f} ({result.wall_s:.0f} s)", flush=True)  # fmt: skip
    return [done[c.name] for c in pool]


def _arch(candidate: Candidate) -> Architecture:
    return Architecture.parse(candidate.architecture)


def run_design(config: DesignConfig | None = None, *, resume: str | Path | None = None,
               budget_s: float | None = None, progress: bool = True) -> Path:  # fmt: skip
    """Run (or resume) a design; returns the run folder.

    Args:
        config: A new run's config (its ``logdir`` is the run folder).
        resume: Instead, the folder of a run to continue.
        budget_s: With ``resume``, a new total budget (to extend a finished or short run).
        progress: Show progress bars.
    """
    if resume is not None:
        state = DesignState.open(Path(resume))
        if budget_s is not None:
            state.data["config"]["budget_s"] = budget_s
            state.save()
        config = state.config
        print(f"resuming {resume}: {format_duration(state.spent())} of "
              f"{format_duration(config.budget_s)} spent", flush=True)  # fmt: skip
    else:
        assert config is not None
        if config.gtn_checkpoint:
            check_teacher(config)
        data = load_data(config)
        start = time.perf_counter()
        check_budget(config, data)  # fails before anything is written
        state = DesignState.create(Path(config.logdir), config)
        state.add_time("plan", time.perf_counter() - start)
    print(config.plan().describe(), flush=True)
    data = load_data(config)

    # 1. the teacher; 2. the search with its reward; 3. the final training
    teacher = teacher_phase(state, progress=progress)
    ranked = _search(state, teacher, progress=progress)
    pool = candidates(config, ranked)
    results = _finals(state, data, pool, progress=progress)

    # 4. the winner by validation accuracy (never test), its files, the report
    designs = [r for r in results if r["kind"] == "design" and r["status"] == "ok"]
    if not designs:
        raise ConfigError("no design trained to a finite loss in the final phase")
    winner = max(designs, key=lambda r: r["val_accuracy"])
    shutil.copyfile(winner["checkpoint"], state.run_dir / "winner.pt")
    export_checkpoint(state.run_dir / "winner.pt", state.run_dir / "winner.ts.pt", force=True)
    state.data["winner"] = winner["name"]
    state.data["done"] = True
    state.save()
    report = write_report(state, [FinalResult(**r) for r in results], winner["name"])
    print(report.read_text())
    print(f"winner {winner['architecture']}: {state.run_dir / 'winner.pt'}, TorchScript "
          f"{state.run_dir / 'winner.ts.pt'}; {format_duration(state.spent())} of "
          f"{format_duration(config.budget_s)}", flush=True)  # fmt: skip
    return state.run_dir
