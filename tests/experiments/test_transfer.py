"""The transfer experiment: config checks, the target cut to size, and a tiny end-to-end run on
digits (source checkpoint made by qlearning_curve's retraining) that is resumable and
deterministic."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from experiments import qlearning_curve as qc
from experiments import transfer as tr
from experiments.harness import CONFIG_DIR, Context, load_config
from metaqnn.core.data import load_dataset
from metaqnn.errors import ConfigError
from metaqnn.search.store import ModelRecord


def _ctx(tmp_path: Path, name: str = "work") -> Context:
    (tmp_path / name).mkdir(exist_ok=True)
    return Context("transfer", tmp_path / "out", tmp_path / name, torch.device("cpu"), None,
                   quick=True, progress=False)  # fmt: skip


def test_both_config_tables_load():
    full = load_config(tr.Config, CONFIG_DIR / "transfer.toml")
    quick = load_config(tr.Config, CONFIG_DIR / "transfer.toml", quick=True)
    assert full.source_checkpoint and not quick.source_checkpoint
    assert full.modes == ("scratch", "finetuned") and len(full.seeds) >= 2


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"modes": ("scratch", "warm")}, "modes=.*'warm'"),
        ({"seeds": (1, 1)}, r"seeds=\[1, 1\] must be distinct"),
        ({"epochs": 0}, "epochs=0 must be positive"),
        ({"test_size": -5}, "test_size=-5 must be >= 0"),
    ],
)
def test_bad_config_names_the_value(change, match):
    with pytest.raises(ConfigError, match=match):
        tr.Config(**change)


def test_target_is_cut_to_the_configured_sizes(tmp_path):
    config = tr.Config(target="digits", train_size=100, val_size=30, test_size=0)
    data = tr.target_data(config, _ctx(tmp_path))
    full = load_dataset("digits")
    assert (len(data.train), len(data.val), len(data.test)) == (100, 30, len(full.test))
    assert torch.equal(data.train.x, full.train.x[:100])


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A tiny digits model saved by qlearning_curve's retraining."""
    tmp = tmp_path_factory.mktemp("source")
    (tmp / "work").mkdir()
    ctx = Context("q", tmp / "out", tmp / "work", torch.device("cpu"), None, quick=True,
                  progress=False)  # fmt: skip
    config = qc.Config(dataset="digits", retrain_epochs=1, retrain_train_size=256,
                       retrain_val_size=64, retrain_max_restarts=0)  # fmt: skip
    model = ModelRecord(
        id=1, architecture="[C(4,3,1), FC(16), SM(10)]", status="ok", reason="", reward=0.9,
        val_accuracy=0.9, test_accuracy=None, parameters=1, flops=1, epsilon=1.0,
        wall_time_s=1.0, worker="inline", attempts=1, finished_at="",
    )  # fmt: skip
    path = tmp / "top.pt"
    qc.retrain(model, load_dataset("digits"), config, path, ctx)
    return path


def _config(source: Path) -> tr.Config:
    return tr.Config(source_checkpoint=str(source), target="digits", seeds=(0, 1), epochs=1,
                     train_size=256, val_size=64, test_size=0, max_restarts=0)  # fmt: skip


def test_run_trains_each_mode_and_seed_and_resumes(tmp_path, source):
    config = _config(source)
    ctx = _ctx(tmp_path)
    outcome = tr.run(config, ctx)
    assert [(r["seed"], r["mode"]) for r in outcome.rows] == [
        (0, "scratch"), (0, "finetuned"), (1, "scratch"), (1, "finetuned"),
    ]  # fmt: skip
    by_mode = {r["mode"]: r for r in outcome.rows if r["seed"] == 0}
    assert by_mode["scratch"]["transferred"] == 0
    assert by_mode["finetuned"]["transferred"] > 0 and by_mode["finetuned"]["reinitialised"] == 0
    assert "scratch_test_error_pct" in outcome.summary and "Fashion-MNIST" in outcome.markdown
    again = tr.run(config, _ctx(tmp_path))  # every seed is in the memo: nothing retrained
    assert again.rows == outcome.rows


def test_same_seed_same_result(tmp_path, source):
    config = dataclasses.replace(_config(source), seeds=(0,))
    a = tr.run(config, _ctx(tmp_path, "a")).rows
    b = tr.run(config, _ctx(tmp_path, "b")).rows
    assert [r["test_accuracy"] for r in a] == [r["test_accuracy"] for r in b]
