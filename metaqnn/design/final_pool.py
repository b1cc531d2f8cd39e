"""The final phase's models: the hand-designed baselines and the finalists, each finalist
at the widest scaling that the time left lets it train at (:func:`final_pool`)."""

from __future__ import annotations

import dataclasses
import itertools
import time

from envs.layers import Architecture
from metaqnn.design.cost import CostCap
from metaqnn.design.final_budget import (
    baseline_epoch_costs,
    design_epoch_share,
    final_epoch_seconds,
    final_flops_cap,
)
from metaqnn.design.finals import Candidate, rescale
from metaqnn.design.pipeline import (
    DesignConfig,
    DesignState,
    baseline_candidates,
    candidates,
    design_candidates,
)


def cost_cap(state: DesignState) -> CostCap | None:
    """The run's search cost cap, as planned (None: off, or a run from before caps)."""
    return CostCap.from_dict(state.data.get("cost_cap"))


def final_pool(state: DesignState, data, ranked: list[tuple[str, float]]) -> list[Candidate]:
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
    cost = cost_cap(state)
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
    pick_order: dict[str, int] = {}  # name -> place in the pick's order
    for c in tries:
        pick_order[c.name] = len(pick_order)
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
    accepted.sort(key=lambda c: pick_order[c.name])
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
    space = config.full_space()
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
