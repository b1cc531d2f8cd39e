"""GTN vs DD: config, the DD teacher's arguments, and the checks on reused run folders."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from experiments.gtn_vs_dd import Config, _check, dd_settings, gtn_settings
from experiments.harness import CONFIG_DIR, load_config
from metaqnn.errors import ConfigError

PAPER = "[C(64,3,1), P(2,2), C(128,3,1), P(2,2), FC(256), SM(10)]"


@pytest.mark.parametrize("quick", [False, True])
def test_config_file_loads(quick):
    config = load_config(Config, CONFIG_DIR / "gtn_vs_dd.toml", quick=quick)
    assert config.dd_steps * config.dd_epochs >= 1
    # quick mode must work from a clean clone: no run folder of this machine
    assert (config.gtn_run == "") is quick


def test_dd_defaults_are_the_dd_papers_shape():
    config = Config()
    dd = dd_settings(config, PAPER)
    assert dd.method == "dd" and dd.learner == PAPER
    assert (dd.dd_steps, dd.dd_epochs, dd.dd_images_per_class) == (10, 3, 1)
    assert gtn_settings(config).dataset == "mnist"


def test_gtn_settings_take_dataset_split_and_seed_from_the_config():
    config = load_config(Config, CONFIG_DIR / "gtn_vs_dd.toml", quick=True)
    gtn = gtn_settings(config)
    assert (gtn.dataset, gtn.val_size, gtn.seed) == ("digits", 300, 0)
    assert (gtn.learner, gtn.inner_steps, gtn.noise_dim) == ("paper", 4, 8)
    clash = dataclasses.replace(config, gtn_teacher=dataclasses.replace(gtn, dataset="mnist"))
    with pytest.raises(ConfigError, match=r"gtn_teacher\.dataset='mnist'"):
        gtn_settings(clash)
    with pytest.raises(ConfigError, match=r"unknown key gtn_teacher\.inner_stpes"):
        load_config(Config, CONFIG_DIR / "gtn_vs_dd.toml",
                    overrides=["gtn_teacher={inner_stpes=4}"])  # fmt: skip


def _state(dataset: str, learner: str) -> dict:
    return {"extra": {"dataset": dataset, "learner": learner}}


def test_reused_runs_must_match_dataset_and_learner():
    _check(_state("mnist", PAPER), Path("r"), "mnist", PAPER)
    _check(_state("mnist", PAPER), Path("r"), "mnist", None)
    with pytest.raises(ConfigError, match=r"r teaches .* on digits; this experiment needs"):
        _check(_state("digits", PAPER), Path("r"), "mnist", PAPER)
    with pytest.raises(ConfigError, match=r"needs \[C\(8"):
        _check(_state("mnist", PAPER), Path("r"), "mnist", "[C(8,3,1), SM(10)]")
    with pytest.raises(ConfigError, match="across a space"):
        _check(_state("mnist", "space"), Path("r"), "mnist", None)


def test_bad_config_is_a_clear_error():
    with pytest.raises(ConfigError, match="dd_epochs=0"):
        load_config(Config, CONFIG_DIR / "gtn_vs_dd.toml", overrides=["dd_epochs=0"])
