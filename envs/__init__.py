"""The MetaQNN search space and its Gymnasium environment (numpy, gymnasium, networkx only).

Importing this package registers ``metaqnn/CNNDesign-v0``::

    import gymnasium, envs
    env = gymnasium.make("metaqnn/CNNDesign-v0", space="mnist", reward_fn=my_reward)

and ``metaqnn/CNNDesignBench-v0``, whose reward is a lookup in the shipped MNIST table::

    env = gymnasium.make("metaqnn/CNNDesignBench-v0")   # table="mnist-bench"
"""

import gymnasium

from envs.bench import (
    BenchTable,
    BenchTableError,
    CNNDesignBenchEnv,
    load_table,
    shipped_tables,
)
from envs.cnn_design import CNNDesignEnv, encode_state, observation_space
from envs.layers import (
    Architecture,
    ArchitectureError,
    ArchitectureParseError,
    Conv,
    FullyConnected,
    GlobalAvgPool,
    Layer,
    Pool,
    Softmax,
)
from envs.space import PRESETS, RULES, RuleViolation, SearchSpace, State, get_space, output_size

ENV_ID = "metaqnn/CNNDesign-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="envs.cnn_design:CNNDesignEnv")
BENCH_ENV_ID = "metaqnn/CNNDesignBench-v0"
if BENCH_ENV_ID not in gymnasium.registry:
    gymnasium.register(id=BENCH_ENV_ID, entry_point="envs.bench:CNNDesignBenchEnv")

__all__ = [
    "BENCH_ENV_ID",
    "ENV_ID",
    "PRESETS",
    "RULES",
    "Architecture",
    "ArchitectureError",
    "ArchitectureParseError",
    "BenchTable",
    "BenchTableError",
    "CNNDesignBenchEnv",
    "CNNDesignEnv",
    "Conv",
    "FullyConnected",
    "GlobalAvgPool",
    "Layer",
    "Pool",
    "RuleViolation",
    "SearchSpace",
    "Softmax",
    "State",
    "encode_state",
    "get_space",
    "load_table",
    "observation_space",
    "output_size",
    "shipped_tables",
]
