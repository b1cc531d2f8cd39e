"""The experiment harness: configs from TOML with a quick table, clear errors, resumable memo."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch

from experiments.harness import Context, Outcome, config_digest, load_config, main
from metaqnn.errors import ConfigError


@dataclass(frozen=True)
class Config:
    dataset: str = "digits"
    seeds: int = 5
    lrs: tuple[float, ...] = (0.001,)
    steps: int | None = None


def _toml(tmp_path, text: str):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_quick_table_and_overrides(tmp_path):
    path = _toml(tmp_path, "seeds = 5\nlrs = [0.1, 1]\n[quick]\nseeds = 1\n")
    assert load_config(Config, path) == Config(seeds=5, lrs=(0.1, 1.0))
    assert load_config(Config, path, quick=True).seeds == 1
    cfg = load_config(Config, path, quick=True, overrides=["seeds=3", "steps=7", "dataset=mnist"])
    assert (cfg.seeds, cfg.steps, cfg.dataset) == (3, 7, "mnist")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("sedes = 5\n", "unknown key.*sedes"),
        ('seeds = "five"\n', "seeds='five' must be an integer"),
        ("lrs = 0.1\n", "lrs=0.1 must be a list"),
        ("seeds = [\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_value(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_config(Config, _toml(tmp_path, text))


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Config, tmp_path / "nope.toml")


def test_memo_survives_a_restart(tmp_path):
    calls = []

    def ctx():
        return Context("x", tmp_path, tmp_path, torch.device("cpu"), None, quick=True)

    assert ctx().memo("a", lambda: calls.append(1) or {"acc": 0.5}) == {"acc": 0.5}
    assert ctx().memo("a", lambda: calls.append(1) or {"acc": 0.9}) == {"acc": 0.5}
    assert calls == [1]


def test_digest_changes_with_config():
    assert config_digest(Config()) != config_digest(Config(seeds=4))


def test_main_writes_results_and_reports_bad_config(tmp_path, capsys):
    path = _toml(tmp_path, "seeds = 2\n[quick]\nseeds = 1\n")

    def run(config, ctx):
        return Outcome(f"seeds {config.seeds}", {"seeds": config.seeds}, [{"i": 0}])

    argv = [
        "--config",
        str(path),
        "--quick",
        "--out",
        str(tmp_path / "o"),
        "--work",
        str(tmp_path / "w"),
    ]
    assert main("toy", Config, run, argv) == 0
    record = json.loads((tmp_path / "o" / "results.json").read_text())
    assert record["summary"] == {"seeds": 1} and record["config"]["seeds"] == 1
    assert record["machine"]["torch"] == str(torch.__version__) and record["wall_s"] >= 0
    assert "seeds 1" in (tmp_path / "o" / "results.md").read_text()
    assert main("toy", Config, run, [*argv, "--set", "seeds=x"]) == 2
    assert "seeds='x' must be an integer" in capsys.readouterr().err
