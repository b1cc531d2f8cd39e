"""GTN vs DD: config, the DD teacher's arguments, and the checks on reused run folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.gtn_vs_dd import Config, _check, dd_args, gtn_args
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
    args = dd_args(config, PAPER)
    pairs = dict(zip(args[::2], args[1::2], strict=True))
    assert pairs["--method"] == "dd" and pairs["--learner"] == PAPER
    assert (pairs["--dd-steps"], pairs["--dd-epochs"], pairs["--dd-images-per-class"]) == (
        "10",
        "3",
        "1",
    )
    assert gtn_args(config)[:2] == ["--dataset", "mnist"]


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
