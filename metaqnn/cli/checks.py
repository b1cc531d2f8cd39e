"""Range checks of the numeric options, run on every command before any work.

An option's destination name decides its rule (``--outer-lr`` and ``lopt``'s ``--outer-lr``
are both learning rates, and so on); an option not named here is only checked to be finite.
A value that breaks its rule is a :class:`~metaqnn.errors.ConfigError` that names the option
and the value, so ``--grad-clip -1`` (which would flip the meta-gradient) or ``--seeds 0``
(which would divide by zero) stop before anything is trained or written.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass

from metaqnn.errors import ConfigError


@dataclass(frozen=True)
class Rule:
    """A predicate on an option's value and the words that say what it wants."""

    holds: Callable[[float], bool]
    wants: str


POSITIVE = Rule(lambda v: v > 0, "a positive number")
AT_LEAST_ONE = Rule(lambda v: v >= 1, "an integer of at least 1")
NON_NEGATIVE = Rule(lambda v: v >= 0, "a number of at least 0")
FRACTION = Rule(lambda v: 0 < v < 1, "a number strictly between 0 and 1")
STEP_SIZE = Rule(lambda v: 0 < v <= 1, "a positive number of at most 1 (an Adam step size)")

# learning rates, clips and noise scales
_POSITIVE = """lr init_lr warm_start_lr grad_clip sigma step_mult base_lr beta
    max_design_flops"""
# counts and sizes
_AT_LEAST_ONE = """epochs steps batch_size finalists real_epochs width_divisor
    final_width_divisor gtn_steps gtn_seeds workers max_models top seeds inner_steps
    inner_batch generator_hidden noise_dim outer_steps meta_batch truncate checkpoint_every
    dd_images_per_class dd_steps dd_epochs per_class max_images attack_images resamples pairs
    truncation val_batch tune_seeds count flops_width_divisor cost_width_divisor"""
# seeds, optional counts, and time limits (``gtn train --max-minutes 0`` saves the warm start
# alone; ``search`` wants a positive limit and says so itself; --score-size 0: all;
# --val-size 0: none; ``design --cost-multiple 0``: no cost cap)
_NON_NEGATIVE = """seed intermediate_every warm_start eval_archs retrain_top burn_in replay noise
    exp_mult max_minutes score_size val_size cost_multiple"""

#: Option destination -> its rule. Options absent here need only be finite.
RULES: dict[str, Rule] = {
    **dict.fromkeys(_POSITIVE.split(), POSITIVE),
    **dict.fromkeys(_AT_LEAST_ONE.split(), AT_LEAST_ONE),
    **dict.fromkeys(_NON_NEGATIVE.split(), NON_NEGATIVE),
    "confidence": FRACTION,
    "outer_lr": STEP_SIZE,  # the teacher's and the learned optimizer's: 1e6 makes NaN weights
}


def option_name(dest: str) -> str:
    """``outer_lr`` -> ``--outer-lr``."""
    return "--" + dest.replace("_", "-")


def check_numbers(args: argparse.Namespace) -> None:
    """Raise :class:`ConfigError` for the first numeric option that is not finite or breaks
    its rule in :data:`RULES`; options left at ``None`` are not checked."""
    for dest, value in sorted(vars(args).items()):
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not math.isfinite(value):
            raise ConfigError(f"{option_name(dest)} {value}: must be a finite number")
        rule = RULES.get(dest)
        if rule is not None and not rule.holds(value):
            raise ConfigError(f"{option_name(dest)} {value}: must be {rule.wants}")
