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
import itertools
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from envs.layers import Architecture
from envs.space import get_space
from metaqnn.core.data import split_record
from metaqnn.core.export import export_checkpoint
from metaqnn.core.training import TrainConfig
from metaqnn.design.budget import format_duration
from metaqnn.design.cost import CostCap
from metaqnn.design.final_budget import (
    baseline_epoch_costs,
    check_budget,
    design_epoch_share,
    final_epoch_seconds,
    final_flops_cap,
    final_need_s,
)
from metaqnn.design.finals import (
    Candidate,
    FinalResult,
    choose_epochs,
    epochs_label,
    probe_error,
    rescale,
    skipped_final,
    train_final,
)
from metaqnn.design.pipeline import (
    FINAL_NET,
    STATE,
    DesignConfig,
    DesignState,
    baseline_candidates,
    candidates,
    check_teacher,
    design_candidates,
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
    cost = _cost_cap(state)
    search, info = sized_search(
        spec, run_dir, agent=config.agent, seconds=left, width_divisor=config.divisor,
        seed=config.seed, max_flops=cost.max_flops if cost else None,
        flops_width_divisor=cost.width_divisor if cost else 1,
    )  # fmt: skip
    state.data["search"] = info
    state.save()
    capped = f" within the cost cap (widths / {cost.width_divisor})" if cost else ""
    print(f"{config.reward} reward at widths / {config.divisor}: "
          f"{info['seconds_per_model']:.2f} s per model (mean of {info.get('probes', 3)} "
          f"architectures){capped}; {config.agent} schedule sized "
          f"to {info['planned_models']} models", flush=True)  # fmt: skip
    return search


def _cost_cap(state: DesignState) -> CostCap | None:
    """The run's search cost cap, as planned (None: off, or a run from before caps)."""
    return CostCap.from_dict(state.data.get("cost_cap"))


def _final_pool(state: DesignState, data, ranked: list[tuple[str, float]]) -> list[Candidate]:
    """The baselines and the finalists, each finalist at the widest scaling that lets every
    model train for the recipe's epochs in the time left (full width when it fits).

    Widths come from a FLOPs estimate; each design's epoch is then measured, and a design
    that still costs more than twice its share (deep nets at full resolution cost more than
    their FLOPs say) gives its place to the next best. What the cheaper finalists leave of
    their shares then widens the narrowed ones, in the pick's order. A design within the
    search's cost cap is not narrowed below the cost width, and may cost what the cap allows
    there. The pool and the measured costs are stored, so a resume trains the same models.
    """
    config = state.config
    if config.final_width_divisor is not None:
        return candidates(config, ranked)
    if "final_pool" in state.data:
        return [Candidate(**c) for c in state.data["final_pool"]]
    cost = _cost_cap(state)
    if "final_epochs" in state.data:  # finals begun before the pool was stored
        return candidates(config, ranked, state.data.get("final_width", {}).get("max_flops"),
                          cost)  # fmt: skip
    start = time.perf_counter()
    costs = dict(state.data.get("baseline_epoch_costs") or baseline_epoch_costs(config, data))
    left = config.budget_s - state.spent()
    share = design_epoch_share(config, costs, left)
    cap = final_flops_cap(config, data, costs, left)
    if cost is not None:  # a design at the cost width may cost what the cap allows there
        share = max(share, share * cost.max_flops / cap)
    accepted: list[Candidate] = []
    dear: list[tuple[float, Candidate]] = []
    tries = itertools.islice(design_candidates(config, ranked, cap, cost), 3 * config.finalists)
    taken = {b.architecture for b in baseline_candidates(config)}
    for c in tries:
        seconds = final_epoch_seconds(config, data, c.architecture)
        c, seconds = _widen_while_it_fits(config, data, c, seconds, share, taken)
        taken.add(c.architecture)
        costs[c.name] = seconds
        if seconds <= 2 * share:
            accepted.append(c)
        else:
            dear.append((seconds, c))
            print(f"{c.name} {c.architecture}: {seconds:.0f} s per epoch, more than twice the "
                  f"{share:.0f} s it may cost; the next design takes its place",
                  flush=True)  # fmt: skip
        if len(accepted) == config.finalists:
            break
    accepted += [c for _, c in sorted(dear, key=lambda t: t[0])][: config.finalists - len(accepted)]
    accepted.sort(key=lambda c: int(c.name.split()[-1]))  # the pick's order
    # what cheap finalists leave of their shares widens the narrowed ones, in the pick's order
    slack = share * len(accepted) - sum(costs[c.name] for c in accepted)
    for i, c in enumerate(accepted):
        if c.width_divisor > 1 and costs[c.name] + slack > share:  # more than it was allowed
            wide, seconds = _widen_while_it_fits(config, data, c, costs[c.name],
                                                 costs[c.name] + slack, taken)  # fmt: skip
            slack -= seconds - costs[c.name]
            taken.add(wide.architecture)
            accepted[i], costs[c.name] = wide, seconds
    pool = [*baseline_candidates(config)]
    for i, c in enumerate(accepted, 1):
        pool.append(dataclasses.replace(c, name=f"design {i}"))
        costs[f"design {i}"] = costs[c.name]
    state.data["final_width"] = {"max_flops": cap, "design_epoch_share": share,
                                 "epoch_costs": {c.name: costs[c.name] for c in pool}}  # fmt: skip
    state.data["final_pool"] = [dataclasses.asdict(c) for c in pool]
    state.add_time("final", time.perf_counter() - start)
    for c in pool:
        if c.kind == "design" and c.width_divisor > 1:
            print(f"{c.name}: full width does not fit the time left; trained at widths / "
                  f"{c.width_divisor}: {c.architecture}", flush=True)  # fmt: skip
    return pool


def _widen_while_it_fits(config: DesignConfig, data, c: Candidate, seconds: float, share: float,
                         taken: set[str]) -> tuple[Candidate, float]:  # fmt: skip
    """``c`` widened (widths / 2 to / 1, ...) while its measured epoch still costs at most
    ``share``: the FLOPs estimate that narrowed it has no fixed costs in it, so on small
    images it narrows designs the time left could train wider. A widening that would repeat
    a model in ``taken`` stops it. Returns the candidate and its epoch seconds."""
    space = get_space(config.dataset)
    while c.width_divisor > 1 and c.search_architecture is not None:
        to = c.width_divisor // 2
        wider = str(rescale(Architecture.parse(c.search_architecture), space, config.divisor, to))
        if wider in taken:
            break
        wider_s = final_epoch_seconds(config, data, wider)
        if wider_s > share:
            break
        c, seconds = dataclasses.replace(c, architecture=wider, width_divisor=to), wider_s
    return c, seconds


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
    cost = _cost_cap(state)
    if cost is not None:
        print(cost.describe(), flush=True)
    data = load_data(config)

    # 1. the teacher; 2. the search with its reward; 3. the final training
    teacher = teacher_phase(state, progress=progress)
    ranked = _search(state, teacher, progress=progress)
    pool = _final_pool(state, data, ranked)
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
