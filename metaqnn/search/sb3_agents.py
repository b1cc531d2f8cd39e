"""The stable-baselines3 agents compared with MetaQNN's Q-learner (see
:mod:`metaqnn.search.baselines`), and sb3-contrib's MaskablePPO.

* ``ppo``, ``a2c``, ``dqn``: stable-baselines3 algorithms on the plain ``Discrete`` action
  space. They do not read :meth:`~envs.cnn_design.CNNDesignEnv.action_masks`: an illegal
  action ends the episode with the environment's ``invalid_action_reward`` and builds nothing,
  so they learn the rules from that penalty; every illegal episode is counted.
* ``maskable_ppo``: sb3-contrib's ``MaskablePPO`` with PPO's settings; it reads the
  environment's :meth:`~envs.cnn_design.CNNDesignEnv.action_masks` before every step, so it
  only takes legal actions (illegal episodes are still counted, and stay at 0). It needs the
  optional ``sb3-contrib`` package (``pip install 'metaqnn[rl]'``).

Every run is budgeted and counted the same way: a :class:`~metaqnn.search.agent_runs.RunRecorder`
is the environment's reward, and a callback counts steps, episodes and illegal episodes and
stops learning once the budget of unique architectures is spent.
"""

from __future__ import annotations

import functools
import importlib
import time
from dataclasses import dataclass
from typing import Any

from metaqnn.errors import ConfigError
from metaqnn.search.agent_runs import (
    AgentRun,
    AgentRunner,
    AgentSettings,
    CachedReward,
    RunRecorder,
    finish_run,
)


@dataclass(frozen=True)
class SB3Agent:
    """A stable-baselines3 (or sb3-contrib) algorithm and its settings for this environment."""

    algorithm: str
    """Class name in :attr:`package` (``PPO``, ``A2C``, ``DQN``, ``MaskablePPO``)."""
    kwargs: dict[str, Any]
    """Constructor keyword arguments (policy ``MlpPolicy`` and the seed are added)."""
    exploration_steps: int | None = None
    """DQN: steps over which epsilon falls from 1 to its final value (turned into the
    ``exploration_fraction`` of the step cap)."""
    package: str = "stable_baselines3"
    """The module that holds :attr:`algorithm`: ``stable_baselines3`` or ``sb3_contrib``."""
    masked: bool = False
    """Whether the algorithm reads the environment's action masks (takes only legal actions)."""


_PPO_KWARGS: dict[str, Any] = {
    "n_steps": 64,
    "batch_size": 32,
    "n_epochs": 4,
    "gamma": 1.0,
    "gae_lambda": 0.95,
    "ent_coef": 0.01,
    "learning_rate": 3e-4,
}

#: The stable-baselines3 agents: small rollouts and batches because the budget is a few hundred
#: episodes of at most ``max_depth + 1`` steps; undiscounted returns, as MetaQNN's gamma = 1.
#: ``maskable_ppo`` is PPO with the same settings that reads the action masks.
SB3_AGENTS: dict[str, SB3Agent] = {
    "ppo": SB3Agent("PPO", _PPO_KWARGS),
    "a2c": SB3Agent("A2C", {"n_steps": 8, "gamma": 1.0, "ent_coef": 0.01, "learning_rate": 7e-4}),
    "dqn": SB3Agent(
        "DQN",
        {
            "learning_starts": 100,
            "buffer_size": 10_000,
            "batch_size": 32,
            "train_freq": 1,
            "target_update_interval": 100,
            "gamma": 1.0,
            "exploration_final_eps": 0.05,
            "learning_rate": 1e-3,
        },
        exploration_steps=1_000,
    ),
    "maskable_ppo": SB3Agent("MaskablePPO", _PPO_KWARGS, package="sb3_contrib", masked=True),
}

#: How to install each optional package an agent needs (the others are dependencies).
INSTALL_HINTS: dict[str, str] = {"sb3_contrib": "pip install 'metaqnn[rl]'"}


def algorithm_class(name: str) -> type:
    """The algorithm class of the agent ``name`` (a key of :data:`SB3_AGENTS`).

    Raises:
        ConfigError: If the name is unknown or the package that holds the class is missing.
    """
    if name not in SB3_AGENTS:
        raise ConfigError(f"unknown stable-baselines3 agent {name!r}; choose from "
                          f"{sorted(SB3_AGENTS)}")  # fmt: skip
    spec = SB3_AGENTS[name]
    try:
        module = importlib.import_module(spec.package)
    except ImportError as err:
        hint = INSTALL_HINTS.get(spec.package, f"pip install {spec.package}")
        raise ConfigError(f"agent {name!r} needs {spec.package}, which is not installed: "
                          f"{hint}") from err  # fmt: skip
    return getattr(module, spec.algorithm)


def _budget_callback(recorder: RunRecorder, counts: dict[str, int]) -> Any:
    """An SB3 callback that counts episodes and illegal ones and stops at the budget."""
    from stable_baselines3.common.callbacks import BaseCallback

    class BudgetCallback(BaseCallback):
        def _on_step(self) -> bool:
            counts["steps"] += 1
            for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
                if done:
                    counts["episodes"] += 1
                    counts["illegal"] += "invalid_action" in info
            return not recorder.exhausted

    return BudgetCallback()


def run_sb3(name: str, settings: AgentSettings, cache: CachedReward, seed: int) -> AgentRun:
    """A stable-baselines3 agent (a key of :data:`SB3_AGENTS`) until the budget is spent or the
    step cap is reached. An unmasked agent sees only ``Discrete(n)``: illegal actions end the
    episode with the environment's invalid-action reward and are counted. A masked one
    (``MaskablePPO``) reads the environment's ``action_masks`` before every step.

    Raises:
        ConfigError: If the name is unknown or its package (sb3-contrib) is not installed.
    """
    cls = algorithm_class(name)
    spec = SB3_AGENTS[name]
    start = time.perf_counter()
    rec = RunRecorder(cache, settings.budget)
    env = settings.env(reward_fn=rec)  # MaskablePPO finds env.action_masks() by itself
    kwargs = dict(spec.kwargs)
    if spec.exploration_steps is not None:
        kwargs["exploration_fraction"] = min(1.0, spec.exploration_steps / settings.max_env_steps)
    kwargs.update(settings.sb3_overrides.get(name, {}))
    model = cls("MlpPolicy", env, seed=seed, device=settings.device, verbose=0, **kwargs)
    counts = {"steps": 0, "episodes": 0, "illegal": 0}
    model.learn(total_timesteps=settings.max_env_steps, callback=_budget_callback(rec, counts))
    return finish_run(name, seed, rec, start, episodes=counts["episodes"],
                      illegal=counts["illegal"], steps=counts["steps"])  # fmt: skip


#: Every SB3 agent by name: ``(settings, shared reward, seed) -> AgentRun``.
SB3_RUNNERS: dict[str, AgentRunner] = {
    name: functools.partial(run_sb3, name) for name in SB3_AGENTS
}
