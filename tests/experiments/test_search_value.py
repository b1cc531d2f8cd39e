"""The search_value experiment's config (full and quick) and its one-line errors; the quick
run itself is in ``test_quick.py``."""

from __future__ import annotations

import pytest

from experiments.harness import CONFIG_DIR, load_config
from experiments.search_value import Config
from metaqnn.errors import ConfigError


def test_full_and_quick_configs_load():
    full = load_config(Config, CONFIG_DIR / "search_value.toml")
    quick = load_config(Config, CONFIG_DIR / "search_value.toml", quick=True)
    # the table: four rows, three seeds, at least 15 minutes of search per run
    assert set(full.rows) == {"qlearning/gtn", "qlearning/real", "random/gtn", "random/real"}
    assert len(full.seeds) >= 3 and full.search_minutes >= 15 and full.dataset == "mnist"
    assert quick.rows == full.rows and quick.gtn_run == ""  # quick runs from a clean clone
    # the quick run goes through the worker pool of the full one
    assert quick.workers == full.workers == 2 and full.threads == 1


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"rows": ("greedy/gtn",)}, "unknown search agent 'greedy'"),
        ({"rows": ("random/flops",)}, "the reward must be gtn or real"),
        ({"seeds": ()}, "must not be empty"),
        ({"search_minutes": float("nan")}, "search_minutes"),
        ({"final_epochs": 0}, "final_epochs"),
        ({"final_minutes": 0.0}, "final_minutes=0.0"),
        ({"workers": 0}, "workers=0"),
        ({"threads": -1}, "threads=-1"),
        ({"dataset": "svhn"}, "no preset for dataset 'svhn'"),
    ],
)
def test_bad_configs_name_the_bad_value(changes, words):
    with pytest.raises(ConfigError, match=words):
        Config(**changes)


def test_units_run_seed_by_seed_with_their_baselines_last():
    from experiments.search_value import _unit_key, _units

    config = Config(rows=("qlearning/gtn", "random/real"), seeds=(3, 1))
    units = _units(config)
    hand = [u[1] for u in units if u[0] == "baseline"]
    assert len(hand) == 2 * len(set(hand)) >= 2  # every hand net at every seed
    # a stopped table has whole seeds: seed 3's runs, then seed 3's baselines, then seed 1
    assert [u[2] for u in units] == [3] * (2 + len(set(hand))) + [1] * (2 + len(set(hand)))
    assert units[0] == ("run", "qlearning/gtn", 3) and units[2][0] == "baseline"
    # memo keys: a design run by row and seed; a baseline by net, seed, recipe and epochs
    assert _unit_key(config, units[1]) == "run/random/real/seed3"
    key = _unit_key(config, units[2])
    assert key.endswith(f"/seed3/{config.recipe}/{config.final_epochs}") and ":" not in key


def test_a_baseline_trained_before_a_stop_is_read_back_from_its_checkpoint(tmp_path):
    from envs.layers import Architecture
    from experiments.search_value import _finished_baseline
    from metaqnn.core.checkpoint import save_checkpoint
    from metaqnn.core.nets import NetConfig, build_model
    from metaqnn.core.training import TrainConfig

    arch = Architecture.parse("[C(4,3,1), SM(10)]")
    net = NetConfig()
    train = TrainConfig(epochs=3)
    model = build_model(arch, in_channels=1, input_size=8, config=net)
    path = tmp_path / "hand-seed0.pt"
    assert _finished_baseline(path, str(arch), train, "digits") is None  # not trained yet
    metrics = {"val_accuracy": 0.9, "test_accuracy": 0.875, "wall_s": 2.5}
    save_checkpoint(path, architecture=arch, net_config=net, train_config=train,
                    dataset="digits", input_shape=(1, 8, 8), state_dict=model.state_dict(),
                    metrics=metrics)  # fmt: skip
    done = _finished_baseline(path, str(arch), train, "digits")
    assert done == {"test_error_pct": 12.5, "val_accuracy": 0.9, "winner": str(arch),
                    "wall_s": 2.5}  # fmt: skip
    # trained another way, or another net or dataset: trained again
    assert _finished_baseline(path, str(arch), TrainConfig(epochs=4), "digits") is None
    assert _finished_baseline(path, "[C(8,3,1), SM(10)]", train, "digits") is None
    assert _finished_baseline(path, str(arch), train, "mnist") is None
    path.write_bytes(b"not a checkpoint")
    assert _finished_baseline(path, str(arch), train, "digits") is None
