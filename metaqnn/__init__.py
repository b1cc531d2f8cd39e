"""metaqnn: CNN architecture search with MetaQNN's Q-learning, made cheap with GTN rewards.

The public API is :data:`__all__`; each name is imported from its module on first use, so that
``import metaqnn`` stays light (no torch until a name needs it)::

    from metaqnn import Search, SearchConfig, RewardSpec, build_model, train_architecture

The rooms of the package:

- :mod:`metaqnn.core`: datasets, architectures as torch modules, real-data training,
  checkpoints;
- :mod:`metaqnn.teacher`: the GTN teacher set up for a dataset, and trained
  (:func:`train_teacher`);
- :mod:`metaqnn.rewards`: what an architecture is worth (real data, the GTN proxy, or any
  callable);
- :mod:`metaqnn.search`: the Q-learner, its replay memory and schedule, the search loop, its
  store, workers, TensorBoard logging, the report, baseline agents;
- :mod:`metaqnn.evaluation`: robustness, attacks, corruptions, transfer, rank correlation;
- :mod:`metaqnn.learned_optimizer`: a learned optimizer for robustness;
- :mod:`metaqnn.demo`: the main job end to end; :mod:`metaqnn.cli`: the command line.

The search space and the Gymnasium environment are in the ``envs`` package; the teacher's
machinery (generator, curriculum, inner loop, meta-training) in ``gtn``.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the module that defines it.
_API: dict[str, str] = {
    # the search space and the environment
    "Architecture": "envs.layers",
    "SearchSpace": "envs.space",
    "get_space": "envs.space",
    "CNNDesignEnv": "envs.cnn_design",
    # data, models, training, checkpoints
    "Dataset": "metaqnn.core.data",
    "load_dataset": "metaqnn.core.data",
    "NetConfig": "metaqnn.core.nets",
    "build_model": "metaqnn.core.nets",
    "count_flops": "metaqnn.core.nets",
    "count_parameters": "metaqnn.core.nets",
    "TrainConfig": "metaqnn.core.training",
    "train_architecture": "metaqnn.core.training",
    "train_model": "metaqnn.core.training",
    "evaluate": "metaqnn.core.training",
    "save_checkpoint": "metaqnn.core.checkpoint",
    "load_checkpoint": "metaqnn.core.checkpoint",
    "export_checkpoint": "metaqnn.core.export",
    "RECIPES": "metaqnn.core.recipes",
    "recipe_config": "metaqnn.core.recipes",
    # the GTN teacher
    "GTNTeacher": "gtn.teacher",
    "TeacherRun": "metaqnn.teacher.run",
    "TeacherResult": "metaqnn.teacher.run",
    "train_teacher": "metaqnn.teacher.run",
    "load_teacher": "metaqnn.teacher.shapes",
    # rewards
    "Reward": "metaqnn.rewards.result",
    "EvaluatingReward": "metaqnn.rewards.result",
    "RewardResult": "metaqnn.rewards.result",
    "RealDataReward": "metaqnn.rewards.real",
    "GTNReward": "metaqnn.rewards.gtn",
    "RewardSpec": "metaqnn.rewards.spec",
    "build_reward": "metaqnn.rewards.spec",
    # the search
    "QLearningAgent": "metaqnn.search.agent",
    "EpsilonSchedule": "metaqnn.search.schedule",
    "ReplayMemory": "metaqnn.search.replay",
    "Search": "metaqnn.search.loop",
    "SearchConfig": "metaqnn.search.loop",
    "SearchStore": "metaqnn.search.store",
    "ModelRecord": "metaqnn.search.store",
    "write_report": "metaqnn.search.report",
    # evaluation
    "PixelModel": "metaqnn.evaluation.pixels",
    "evaluate_robustness": "metaqnn.evaluation.robustness",
    "robustness_markdown": "metaqnn.evaluation.report",
    "RobustnessConfig": "metaqnn.evaluation.robustness",
    "run_attack": "metaqnn.evaluation.attacks",
    "corrupt": "metaqnn.evaluation.corruptions",
    "transfer": "metaqnn.evaluation.transfer",
    "rank_correlation": "metaqnn.evaluation.correlation",
    # the main job
    "DesignConfig": "metaqnn.design.pipeline",
    "run_design": "metaqnn.design.run",
    "DemoConfig": "metaqnn.demo",
    "run_demo": "metaqnn.demo",
}

__all__ = sorted([*_API, "__version__"])


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return importlib.import_module("metaqnn.runinfo").package_version()
    if name not in _API:
        raise AttributeError(f"module 'metaqnn' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
