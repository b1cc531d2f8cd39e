"""``run_design``: plan, teacher, search, final training, outputs; read top to bottom.

Each phase keeps to its share of the budget and records the seconds it spent in
``design.json``. The search runs until the run's clock reaches the end of its share (what the
teacher left is the search's too), and gets the part of the final share that the final
training cannot use (measured from the baselines' epochs when the run is planned: the
recipe's epochs of every model then fit). The final phase gets whatever the earlier ones
left, and chooses the epochs of the final recipe so that every model fits (90 % of the time
left, from measured epoch costs). Should the probes prove too low, a design that would take
the run more than 10 % past its budget is skipped (a resume with a larger budget trains it).
A stop or ``kill -9`` loses at most the unit of work in flight.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from metaqnn.core.data import split_record
from metaqnn.core.export import export_checkpoint
from metaqnn.core.training import TrainConfig
from metaqnn.design.budget import format_duration
from metaqnn.design.final_budget import (
    check_budget,
    final_epoch_seconds,
    final_need_s,
)
from metaqnn.design.final_pool import cost_cap, final_pool
from metaqnn.design.finals import (
    Candidate,
    FinalResult,
    choose_epochs,
    epochs_label,
    probe_error,
    skipped_final,
    train_final,
)
from metaqnn.design.pipeline import (
    FINAL_NET,
    STATE,
    DesignConfig,
    DesignState,
    check_teacher,
    final_train_config,
    load_data,
    teacher_phase,
)
from metaqnn.design.report import write_report
from metaqnn.design.searching import run_sized, sized_search
from metaqnn.errors import ConfigError
from metaqnn.rewards.spec import RewardSpec
from metaqnn.runlock import RunLock
from metaqnn.search.loop import Search
from metaqnn.search.store import DB_NAME, ModelRecord, SearchStore


class TimelineLogger:
    """Appends each recorded model to ``timeline.jsonl`` with the run's clock (seconds of
    budget spent when it was recorded): the anytime curve of the report. ``on_model`` runs
    after each model (the design run saves the time spent, so a ``kill -9`` loses only the
    model in flight)."""

    def __init__(self, path: Path, clock_start: float,
                 on_model: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.path, self.clock_start, self.start = path, clock_start, time.perf_counter()
        self.on_model = on_model

    def log(self, record: ModelRecord, search: Search) -> None:
        """Append one model."""
        row = {"t": self.clock_start + time.perf_counter() - self.start,
               "reward": record.reward, "architecture": record.architecture}  # fmt: skip
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if self.on_model is not None:
            self.on_model()

    def close(self) -> None:
        """Nothing to release."""


def _search(state: DesignState, teacher: Path | None, *, progress: bool) -> list[tuple[str, float]]:
    """The search (the config's agent and reward) within the search share. Returns the ok
    designs, best first."""
    config, run_dir = state.config, state.run_dir / "search"
    if state.data["phases"].get("search") != "done":
        base = state.data["spent"].get("search", 0.0)
        left = state.search_left()
        start = time.perf_counter()

        def save_time() -> None:
            state.data["spent"]["search"] = base + time.perf_counter() - start
            state.save()

        try:
            if (run_dir / DB_NAME).exists():
                search = Search.resume(run_dir)
            else:
                search = _new_search(state, teacher, run_dir, left)
            clock = state.spent() + time.perf_counter() - start  # the run's clock now
            search.logger = TimelineLogger(state.run_dir / "timeline.jsonl", clock, save_time)
            limit = left - (time.perf_counter() - start)
            print(f"searching for up to {format_duration(max(limit, 0))}: "
                  f"{search.schedule.total} models planned", flush=True)  # fmt: skip
            if limit > 0:
                run_sized(search, limit, config.agent, progress=progress)
            if search.done < config.finalists:  # a design needs designs: a few past the share
                search.run(max_models=config.finalists - search.done, progress=progress)
            # the schedule as re-sized to the measured cost, not the one planned from probes
            info = state.data.setdefault("search", {})
            info.update(models=search.done, final_schedule=search.schedule.to_spec())
            search.close()
        finally:
            save_time()
        state.data["phases"]["search"] = "done"
        state.save()
    store = SearchStore.open(run_dir)
    models = [m for m in store.models() if m.status == "ok"]
    store.close()
    if not models:
        raise ConfigError(f"the search in {run_dir} recorded no model: give it a larger budget")
    return [(m.architecture, m.reward) for m in sorted(models, key=lambda m: -m.reward)]


def _new_search(state: DesignState, teacher: Path | None, run_dir: Path,
                left: float) -> Search:  # fmt: skip
    """Measure the reward's cost at the search width, size the agent's schedule to the
    ``left`` seconds of the share, start."""
    config = state.config
    spec = RewardSpec(name=config.reward, dataset=config.dataset, data_root=config.data_root,
                      seed=config.seed, device=config.device, epochs=config.real_epochs,
                      gtn_checkpoint=None if teacher is None else str(teacher),
                      score_size=config.score_size)  # fmt: skip
    cost = cost_cap(state)
    search, info = sized_search(
        spec, run_dir, agent=config.agent, seconds=left, width_divisor=config.divisor,
        seed=config.seed, max_flops=cost.max_flops if cost else None,
        flops_width_divisor=cost.width_divisor if cost else 1, space=config.space,
    )  # fmt: skip
    state.data["search"] = info
    state.save()
    capped = f" within the cost cap (widths / {cost.width_divisor})" if cost else ""
    print(f"{config.reward} reward at widths / {config.divisor}: "
          f"{info['seconds_per_model']:.2f} s per model (mean of {info.get('probes', 3)} "
          f"architectures){capped}; {config.agent} schedule sized "
          f"to {info['planned_models']} models", flush=True)  # fmt: skip
    return search


def _finals(state: DesignState, data, pool: list[Candidate], *, progress: bool) -> list[dict]:
    """Train every candidate with the final recipe at epochs that fit the time left."""
    config = state.config
    done = state.data["finals"]
    # a design skipped for want of time is tried again (a resume may have a larger budget)
    todo = [c for c in pool if done.get(c.name, {}).get("status") in (None, "skipped")]
    if todo and "final_epochs" not in state.data:
        start = time.perf_counter()
        train = final_train_config(config)
        plan = state.data.get("final_width", {})
        known = plan.get("epoch_costs") or plan.get("baseline_epoch_costs", {})
        costs = [known.get(c.name) or final_epoch_seconds(config, data, c.architecture)
                 for c in todo]  # fmt: skip
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
        print(f"final training: {len(todo)} models x {epochs_label(epochs)} epochs of the "
              f"{config.recipe!r} recipe, about {format_duration(epochs * sum(costs))}",
              flush=True)  # fmt: skip
    epochs = state.data.get("final_epochs")
    train = final_train_config(config, epochs, len(data.train))

    def config_for(n: int) -> TrainConfig:  # the recipe for n training images
        return final_train_config(config, epochs, n)

    finals = state.run_dir / "finals"
    finals.mkdir(exist_ok=True)
    predicted = state.data.get("final_epoch_costs", {})
    for c in todo:
        if _no_room(state, c, predicted):
            done[c.name] = dataclasses.asdict(skipped_final(c, data, FINAL_NET))
            state.save()
            continue
        result = train_final(c, data, train, FINAL_NET, config.device, finals / f"{c.slug}.pt",
                             progress=progress, folds=config.folds, config_for=config_for,
                             split=split_record(data, config.seed))  # fmt: skip
        done[c.name] = dataclasses.asdict(result)
        state.add_time("final", result.wall_s)
        measure = f"{config.folds}-fold cv" if result.folds else "val"
        print(f"{c.name}: {c.architecture} {measure} {result.val_accuracy:.4f} test "
              f"{result.test_accuracy:.4f} ({result.wall_s:.0f} s)", flush=True)  # fmt: skip
    return [done[c.name] for c in pool]


def _no_room(state: DesignState, c: Candidate, predicted: dict[str, float]) -> bool:
    """Whether ``c`` is a design that would take the run more than 10 % past its budget, with
    epoch costs corrected by how far the probes under-counted the models trained so far, while
    another design has trained (the winner needs one; the baselines are always trained)."""
    done = [r for r in state.data["finals"].values() if r["status"] != "skipped"]
    if c.kind != "design" or not any(r["kind"] == "design" and r["status"] == "ok" for r in done):
        return False
    factor = probe_error(done, predicted)
    need = state.data["final_epochs"] * predicted.get(c.name, 0.0) * factor
    left = 1.1 * state.config.budget_s - state.spent()
    if need <= left:
        return False
    print(f"{c.name}: skipped; its {epochs_label(state.data['final_epochs'])} epochs would "
          f"take about "
          f"{format_duration(need)} (probed epoch cost x {factor:.1f}, as measured on the models "
          f"trained so far) and {format_duration(max(left, 0))} is left of the budget and its "
          "10 % margin", flush=True)  # fmt: skip
    return True


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
        lock = RunLock(resume)
        if Path(resume, STATE).is_file():
            lock.acquire()  # a second process on the same run is refused
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
        costs = check_budget(config, data)  # fails before anything is written
        lock = RunLock(config.logdir).acquire()
        state = DesignState.create(Path(config.logdir), config)
        state.data["baseline_epoch_costs"] = costs
        state.data["final_need_s"] = final_need_s(config, costs)
        cost = config.cost_cap()  # from the baselines' FLOPs: no training
        state.data["cost_cap"] = None if cost is None else cost.to_dict()
        state.add_time("plan", time.perf_counter() - start)
    with lock:
        return _run_phases(state, progress=progress)


def _run_phases(state: DesignState, *, progress: bool) -> Path:
    """Teacher, search, finals, winner and report of a run this process owns."""
    config = state.config
    print(state.plan().describe(f"{config.agent}, {config.reward} reward"), flush=True)
    cost = cost_cap(state)
    if cost is not None:
        print(cost.describe(), flush=True)
    data = load_data(config)

    # 1. the teacher; 2. the search with its reward; 3. the final training
    teacher = teacher_phase(state, progress=progress)
    ranked = _search(state, teacher, progress=progress)
    pool = final_pool(state, data, ranked)
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
