"""The bench environment: a table lookup as the reward, seeds or their mean, test accuracy
only in ``info``, a simulated clock, Gymnasium's checker, and a step well under 1 ms. The
tables here are fake metrics written by the same ``save_table`` the exporter uses."""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.bench import BenchTableError, CNNDesignBenchEnv, load_table, save_table
from envs.enumerate import enumerate_architectures, iter_architectures, space_size
from envs.graph import count_architectures, state_graph
from envs.layers import Architecture
from envs.space import PRESETS, SearchSpace

#: 6 architectures: [C(2,3,1), C(2,3,1), SM(10)], [C(2,3,1), P(2,2), SM(10)], ...
SPACE = SearchSpace(
    name="tiny", input_size=8, max_depth=2, conv_filters=(2,), conv_kernels=(3,),
    pools=((2, 2),), fc_widths=(4,), size_bins=(4, 2),
)  # fmt: skip


def fake_table(path, *, missing: bool = False):
    """A table of SPACE with 2 seeds: val = 0.1 * (row + 1) + 0.01 * seed, time = row + seed."""
    archs = [str(a) for a in enumerate_architectures(SPACE)]
    n, rows = len(archs), np.arange(len(archs))[:, None]
    val = 0.1 * (rows + 1) + 0.01 * np.array([0, 1])
    if missing:
        val[0, 1] = np.nan
    arrays = {
        "architectures": np.array(archs),
        "seeds": np.array([0, 1]),
        "val_accuracy": val,
        "test_accuracy": val - 0.05,
        "train_seconds": rows + np.array([0.0, 1.0]),
        "parameters": np.arange(n) * 10,
        "flops": np.arange(n) * 100,
        "gtn_reward": np.linspace(0.5, 0.9, n),
    }
    header = {"space": SPACE.__dict__, "dataset": "digits", "seeds": [0, 1], "complete": True}
    return save_table(path, arrays, header), archs


def play(env, arch: str, seed: int | None = None):
    """Build ``arch`` action by action; return the last step."""
    env.reset(seed=seed)
    for layer in Architecture.parse(arch).layers:
        index = env.unwrapped.space.action_index(layer)
        _, reward, terminated, _, info = env.step(index)
    assert terminated
    return reward, info


@pytest.fixture
def table(tmp_path):
    return fake_table(tmp_path / "t.npz")


def test_the_enumeration_is_every_architecture_once_in_a_fixed_order():
    archs = [str(a) for a in enumerate_architectures(SPACE)]
    assert len(archs) == len(set(archs)) == space_size(SPACE) == 6
    assert archs == [str(a) for a in iter_architectures(SPACE)]
    assert archs[0] == "[C(2,3,1), C(2,3,1), SM(10)]" and archs[-1] == "[SM(10)]"
    assert all(SPACE.is_valid(a) for a in enumerate_architectures(SPACE))
    with pytest.raises(ValueError, match="has 6 architectures, more than the 5"):
        enumerate_architectures(SPACE, limit=5)


def test_the_bench_preset_has_the_counted_architectures():
    space = PRESETS["mnist-bench"]
    assert count_architectures(state_graph(space), space.start()) == 1362
    assert space_size(space) == 1362
    wider = space.replace(conv_filters=(8, 16, 32))  # the other example
    assert space_size(wider) == 4550


def test_the_reward_is_the_validation_accuracy_and_test_is_only_in_info(table):
    path, archs = table
    env = CNNDesignBenchEnv(path, table_seed="mean")
    reward, info = play(env, archs[2])
    assert reward == pytest.approx(0.3 + 0.005)
    assert info["val_accuracy"] == reward
    assert info["test_accuracy"] == pytest.approx(0.255)
    assert info["table_seed"] == "mean" and info["parameters"] == 20 and info["flops"] == 200
    assert info["gtn_reward"] == pytest.approx(0.66)
    assert info["architecture"] == archs[2]


@pytest.mark.parametrize("seed, expected", [(0, 0.4), (1, 0.41)])
def test_one_seed_of_the_table(table, seed, expected):
    path, archs = table
    env = CNNDesignBenchEnv(path, table_seed=seed)
    reward, info = play(env, archs[3])
    assert reward == pytest.approx(expected) and info["table_seed"] == seed


def test_a_random_seed_per_lookup_follows_the_env_seed(table):
    path, archs = table
    draws = []
    for _ in range(2):
        env = CNNDesignBenchEnv(path, table_seed="random")
        draws.append([play(env, archs[1], seed=7 if i == 0 else None)[1]["table_seed"]
                      for i in range(20)])  # fmt: skip
    assert draws[0] == draws[1] and set(draws[0]) == {0, 1}


def test_the_simulated_clock_adds_recorded_training_time_across_episodes(table):
    path, archs = table
    env = CNNDesignBenchEnv(path, table_seed=1)
    _, first = play(env, archs[2])  # time 2 + 1
    _, second = play(env, archs[4])  # time 4 + 1
    assert first["train_seconds"] == 3.0 and first["sim_time_s"] == 3.0
    assert second["sim_time_s"] == 8.0 and env.sim_time_s == 8.0
    env.reset()
    env.step(0)  # C(2,3,1): a layer, not the end, so no lookup
    assert env.sim_time_s == 8.0
    env.reset_clock()
    assert env.sim_time_s == 0.0


def test_bad_table_seed_and_partial_rows_are_clear_errors(tmp_path):
    path, archs = fake_table(tmp_path / "p.npz", missing=True)
    with pytest.raises(ValueError, match=r"table_seed=3: choose 'mean', 'random' or a seed"):
        CNNDesignBenchEnv(path, table_seed=3)
    env = CNNDesignBenchEnv(path, table_seed=1)
    with pytest.raises(BenchTableError, match=r"no result for table_seed=1 .a partial table"):
        play(env, archs[0])
    assert play(CNNDesignBenchEnv(path, table_seed=0), archs[0])[0] == pytest.approx(0.1)
    with pytest.raises(BenchTableError, match="no architecture"):
        env.lookup("[FC(4), SM(10)]")


def test_the_table_knows_its_space(table):
    path, _ = table
    loaded = load_table(path)
    assert loaded.space == SPACE and len(loaded) == 6
    assert load_table(path) is loaded  # loaded once per file


def test_gymnasium_check_env_passes(table):
    path, _ = table
    check_env(CNNDesignBenchEnv(path))
    check_env(gym.make(envs.BENCH_ENV_ID, table=str(path), render_mode="ansi").unwrapped)


def test_the_registered_id_makes_it(table):
    path, archs = table
    assert envs.BENCH_ENV_ID == "metaqnn/CNNDesignBench-v0"
    env = gym.make(envs.BENCH_ENV_ID, table=str(path), table_seed=0)
    reward, info = play(env, archs[5])
    assert reward == pytest.approx(0.6) and info["sim_time_s"] == 5.0
    assert env.unwrapped.action_masks().dtype == bool


def test_a_step_costs_well_under_a_millisecond(table):
    path, _ = table
    env = CNNDesignBenchEnv(path)
    rng = np.random.default_rng(0)
    steps, start = 0, time.perf_counter()
    while steps < 2000:
        env.reset()
        done = False
        while not done:
            action = int(rng.choice(np.flatnonzero(env.action_masks())))
            done = env.step(action)[2]
            steps += 1
    per_step = (time.perf_counter() - start) / steps
    assert per_step < 1e-3, f"{per_step * 1e6:.0f} us per step"


def test_the_mnist_table_ships_with_the_package_and_is_the_default():
    """Issue 20: `pip install` plus one line gives the MNIST benchmark (every architecture of
    the mnist-bench space, two seeds), and the wheel carries the file."""
    import tomllib
    from pathlib import Path

    assert "mnist-bench" in envs.shipped_tables()
    env = gym.make("metaqnn/CNNDesignBench-v0")
    table = env.unwrapped.table
    assert table.header["space"]["name"] == "mnist-bench"
    assert len(table) == space_size(table.space) == 1362
    assert table.complete and len(table.seeds) == 2
    assert Path(table.path).stat().st_size <= 10 * 2**20
    env.reset(seed=0)
    mask = env.unwrapped.action_masks()
    assert mask.any()
    pyproject = Path(envs.__file__).resolve().parent.parent / "pyproject.toml"
    package_data = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]
    assert "tables/*.npz" in package_data["envs"]


def test_a_table_name_that_is_not_shipped_is_a_one_line_error():
    with pytest.raises(BenchTableError, match="'mnist-bnch': not a shipped table") as info:
        load_table("mnist-bnch")
    assert "\n" not in str(info.value)
