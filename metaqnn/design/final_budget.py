"""What the final phase of a design run may spend: the measured epoch cost of each model
(:func:`final_epoch_seconds`), the check that a budget can train them all before any work
(:func:`check_budget`), the time the final training can use at most (the rest goes to the
search), and how costly a finalist may be (:func:`design_epoch_share`, in FLOPs
:func:`final_flops_cap`)."""

from __future__ import annotations

import numpy as np

from envs.layers import Architecture
from metaqnn.core.data import Dataset
from metaqnn.core.nets import count_flops
from metaqnn.design.budget import format_duration
from metaqnn.design.finals import epoch_seconds
from metaqnn.design.pipeline import FINAL_NET, DesignConfig, final_train_config
from metaqnn.design.selection import training_passes
from metaqnn.errors import ConfigError


def final_epoch_seconds(config: DesignConfig, data: Dataset, arch: str) -> float:
    """Measured seconds that one epoch of the final recipe costs a model of the final phase:
    one epoch over the training split, times the passes that its selection takes
    (:func:`metaqnn.design.selection.training_passes`: more with cross-validation)."""
    seconds = epoch_seconds(Architecture.parse(arch), data, final_train_config(config),
                            FINAL_NET, config.device)  # fmt: skip
    return seconds * training_passes(data, config.folds)


def baseline_epoch_costs(config: DesignConfig, data: Dataset) -> dict[str, float]:
    """:func:`final_epoch_seconds` of each hand-designed baseline."""
    return {name: final_epoch_seconds(config, data, a)
            for name, a in config.preset.baselines.items()}  # fmt: skip


def check_budget(config: DesignConfig, data: Dataset) -> dict[str, float]:
    """Fail now, before any work, if the final share cannot train every baseline and finalist
    for one epoch. Returns the measured epoch seconds of each baseline."""
    names = ", ".join(config.preset.baselines)
    print(f"timing one epoch of the {config.recipe!r} recipe on the hand baselines ({names}) "
          "to check the budget", flush=True)  # fmt: skip
    costs = baseline_epoch_costs(config, data)
    mean = float(np.mean(list(costs.values())))
    models = len(costs) + config.finalists
    final_s = config.plan().final_s
    if 0.9 * final_s < mean * models:
        need = config.budget_s * mean * models / 0.9 / max(final_s, 1e-9)
        raise ConfigError(
            f"--budget {format_duration(config.budget_s)} leaves {format_duration(final_s)} for "
            f"final training, and one epoch of the {len(costs)} baselines and "
            f"{config.finalists} finalists takes about {format_duration(mean * models)} here: "
            f"use --budget {format_duration(need)} or more"
        )
    return costs


#: What the final phase's time is reserved for: a finalist's epoch costing this many times
#: the costliest baseline's ...
DESIGN_EPOCH_ALLOWANCE = 2.0
#: ... and this margin on top (the epoch probes, evaluation, slower epochs).
FINAL_NEED_MARGIN = 1.5


def final_need_s(config: DesignConfig, baseline_costs: dict[str, float]) -> float | None:
    """Seconds the final training can use at most: the recipe's epochs of every baseline and
    of every finalist at :data:`DESIGN_EPOCH_ALLOWANCE` times the costliest baseline, in 90 %
    of the time, times :data:`FINAL_NEED_MARGIN`. The final phase trains no model for more
    than the recipe's epochs, so the final share beyond this is the search's. None with
    ``final_width_divisor`` set (the designs' cost is then not the run's to choose).

    On digits with 5-fold cross-validation (the 5-minute demo) it is about the whole final
    share of 2m45s, though the final training takes about a minute there (the allowance and
    the margin are generous for its tiny nets); on MNIST and Fashion-MNIST it is hours, more
    than any share of a 2-hour budget."""
    if config.final_width_divisor is not None or not baseline_costs:
        return None
    epochs = final_train_config(config).epochs
    trained = sum(baseline_costs.values()) if config.baselines else 0.0
    designs = config.finalists * DESIGN_EPOCH_ALLOWANCE * max(baseline_costs.values())
    return FINAL_NEED_MARGIN * epochs * (trained + designs) / 0.9


def design_epoch_share(config: DesignConfig, baseline_costs: dict[str, float],
                       seconds_left: float) -> float:  # fmt: skip
    """Seconds one epoch of a finalist may cost, so that the baselines and the finalists all
    train for the recipe's epochs in 90 % of ``seconds_left``.

    The finalists share what the baselines leave; each may cost at least as much as the
    cheapest baseline (fewer epochs for all then, rather than designs narrower than any hand
    net).
    """
    epochs = final_train_config(config).epochs
    trained = sum(baseline_costs.values()) if config.baselines else 0.0
    share = (0.9 * seconds_left / epochs - trained) / config.finalists
    return max(share, min(baseline_costs.values()))


def final_flops_cap(config: DesignConfig, data: Dataset, baseline_costs: dict[str, float],
                    seconds_left: float) -> float:  # fmt: skip
    """Forward FLOPs per image a finalist may cost: :func:`design_epoch_share` in FLOPs, at
    the seconds per FLOP of the baselines' measured epochs."""
    shape = {"in_channels": data.spec.input_shape[0], "input_size": data.spec.input_shape[-1]}
    flops = {n: count_flops(Architecture.parse(a), **shape)
             for n, a in config.preset.baselines.items()}  # fmt: skip
    per_flop = float(np.mean([baseline_costs[n] / max(flops[n], 1) for n in flops]))
    return design_epoch_share(config, baseline_costs, seconds_left) / per_flop
