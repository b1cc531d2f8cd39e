"""Optuna's TPE (tree-structured Parzen estimator) over the MetaQNN space, played through the
Gymnasium environment. Optional: it needs ``optuna`` (``pip install 'metaqnn[tpe]'``).

Define-by-run: each episode is one Optuna trial. At step ``t`` the trial suggests the
categorical parameter ``a{t}`` over **all** action indices ``0 .. n - 1`` (Optuna needs the same
choices for a parameter name in every trial, while the legal actions depend on the state), and
an illegal choice is mapped deterministically onto a legal one: ``legal[choice % len(legal)]``
with ``legal`` the legal action indices in increasing order (a legal choice is kept as it is).
So every architecture is valid, and the same parameters always build the same architecture;
TPE models the raw choices, of which several may stand for the same legal action. Deeper
architectures have more parameters; TPE samples each one independently from the trials that
have it.

The finished architecture's reward is told to the study. An architecture this run has
evaluated before is a free repeat: its cached reward is told too, and it does not count in
the budget. The run stops when the budget of unique architectures is spent, at the step cap,
after :data:`MAX_CONSECUTIVE_REPEATS` repeats in a row (a converged study would otherwise
spin), or after :data:`TRIALS_PER_ARCHITECTURE` x budget trials: Optuna's TPE reads every past
trial at each suggestion, so a study that keeps rebuilding known architectures between new ones
slows down quadratically (measured on the 1,362-architecture MNIST table: 1,342 trials took
15 s, and a run without this cap passed 4 CPU-minutes on its next seed). The sampler is
``TPESampler(seed=seed)`` with Optuna's defaults (10 random startup trials); runs are
deterministic per seed. Optuna's logging is set to warnings during the run.
"""

from __future__ import annotations

import importlib
import itertools
import time
from types import ModuleType

import numpy as np

from envs.layers import Architecture
from metaqnn.errors import ConfigError
from metaqnn.search.agent import play
from metaqnn.search.agent_runs import AgentRun, AgentSettings, CachedReward, RunRecorder, finish_run

#: How to install the optional package the agent needs.
INSTALL_HINT = "pip install 'metaqnn[tpe]'"
#: Repeats in a row after which a run stops (a study that only rebuilds known architectures).
MAX_CONSECUTIVE_REPEATS = 200
#: Trials per architecture of the budget after which a run stops (see the module docstring).
TRIALS_PER_ARCHITECTURE = 4


def optuna_module() -> ModuleType:
    """The ``optuna`` module.

    Raises:
        ConfigError: One line with the install hint if optuna is not installed.
    """
    try:
        return importlib.import_module("optuna")
    except ImportError as err:
        raise ConfigError(
            f"agent 'tpe' needs optuna, which is not installed: {INSTALL_HINT}"
        ) from err


def legal_action(choice: int, mask: np.ndarray) -> int:
    """The legal action a raw choice stands for: itself if legal, else
    ``legal[choice % len(legal)]`` over the legal indices in increasing order.

    Raises:
        ConfigError: If no action is legal.
    """
    if mask[choice]:
        return int(choice)
    legal = np.flatnonzero(mask)
    if len(legal) == 0:
        raise ConfigError("no legal action in this state")
    return int(legal[choice % len(legal)])


def run_tpe(
    settings: AgentSettings,
    cache: CachedReward,
    seed: int,
    *,
    max_repeats: int = MAX_CONSECUTIVE_REPEATS,
    max_trials: int | None = None,
) -> AgentRun:
    """Optuna's TPE until the budget of unique architectures is spent, the step cap is
    reached, ``max_repeats`` repeats come in a row, or ``max_trials`` trials are done (default
    :data:`TRIALS_PER_ARCHITECTURE` x the budget; see the module docstring).

    Raises:
        ConfigError: If optuna is not installed (with the install hint), or ``max_repeats`` or
            ``max_trials`` is below 1.
    """
    optuna = optuna_module()
    if max_repeats < 1:
        raise ConfigError(f"max_repeats must be >= 1, got {max_repeats!r}")
    if max_trials is None:
        max_trials = TRIALS_PER_ARCHITECTURE * settings.budget
    if max_trials < 1:
        raise ConfigError(f"max_trials must be >= 1, got {max_trials!r}")
    start = time.perf_counter()
    rec = RunRecorder(cache, settings.budget)
    env = settings.env()
    choices = list(range(int(env.action_space.n)))
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed)
        )
        episodes = steps = in_a_row = 0
        while (not rec.exhausted and steps < settings.max_env_steps and in_a_row < max_repeats
               and episodes < max_trials):  # fmt: skip
            trial = study.ask()
            step = itertools.count()

            def choose(obs: tuple[int, ...], mask: np.ndarray, trial=trial, step=step) -> int:
                raw = trial.suggest_categorical(f"a{next(step)}", choices)
                return legal_action(int(raw), mask)

            trajectory = play(env, choose)
            episodes += 1
            steps += len(trajectory.transitions)
            in_a_row = in_a_row + 1 if rec.seen(trajectory.architecture) else 0
            study.tell(trial, rec(Architecture.parse(trajectory.architecture)))
    finally:
        optuna.logging.set_verbosity(verbosity)
    return finish_run("tpe", seed, rec, start, episodes=episodes, illegal=0, steps=steps)
