"""The qlearning_curve experiment: config checks, stage table, reuse of a stored search and of
retrained checkpoints (tiny digits nets; the end-to-end run is the quick-mode smoke test)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from experiments import qlearning_curve as qc
from experiments.common.search_report import stage_rows
from experiments.harness import CONFIG_DIR, Context, load_config
from metaqnn.core.data import load_dataset
from metaqnn.errors import ConfigError
from metaqnn.rewards.result import RewardResult
from metaqnn.rewards.spec import RewardSpec
from metaqnn.search.loop import SearchConfig
from metaqnn.search.store import ModelRecord, SearchStore


def _record(i: int, arch: str, reward: float, epsilon: float) -> ModelRecord:
    return ModelRecord(
        id=i, architecture=arch, status="ok", reason="", reward=reward, val_accuracy=reward,
        test_accuracy=None, parameters=10, flops=10, epsilon=epsilon, wall_time_s=1.0,
        worker="inline", attempts=1, finished_at="",
    )  # fmt: skip


def _ctx(tmp_path: Path) -> Context:
    (tmp_path / "work").mkdir(exist_ok=True)
    return Context("qlearning_curve", tmp_path / "out", tmp_path / "work", torch.device("cpu"),
                   None, quick=True, progress=False)  # fmt: skip


def test_both_config_tables_load():
    full = load_config(qc.Config, CONFIG_DIR / "qlearning_curve.toml")
    quick = load_config(qc.Config, CONFIG_DIR / "qlearning_curve.toml", quick=True)
    assert full.seed_search and not quick.seed_search and not quick.search_dir
    assert quick.top_k >= 3  # the rank correlation needs three
    assert full.gtn_teacher.learner == "paper" and quick.gtn_teacher.width_divisor == 16


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"top_k": 0}, "top_k=0 must be positive"),
        ({"retrain_train_size": -1}, "retrain_train_size=-1 must be >= 0"),
        ({"schedule": "often"}, "unknown schedule 'often'"),
        ({"norm": "layer-ish"}, "layer-ish"),
    ],
)
def test_bad_config_names_the_value(change, match):
    with pytest.raises(ConfigError, match=match):
        qc.Config(**change)


def test_stage_rows_mean_and_gap_share():
    models = [
        _record(1, "[GAP, SM(10)]", 0.1, 1.0),
        _record(2, "[C(4,3,1), SM(10)]", 0.5, 1.0),
        _record(3, "[C(4,3,1), P(2,2), SM(10)]", 0.9, 0.1),
    ]
    rows = stage_rows(models)
    assert [(r["epsilon"], r["models"]) for r in rows] == [(1.0, 2), (0.1, 1)]
    assert rows[0]["mean_reward"] == pytest.approx(0.3)
    assert rows[0]["share_gap"] == 0.5 and rows[1]["share_gap"] == 0.0


def _stored(tmp_path: Path, schedule: str) -> Path:
    run_dir = tmp_path / "old-search"
    spec = RewardSpec(name="gtn", dataset="digits", gtn_checkpoint="nowhere", score_size=100)
    config = SearchConfig(reward=spec, width_divisor=2, schedule=schedule, replay=10)
    store = SearchStore.create(run_dir, config.to_dict(), {})
    result = RewardResult(
        architecture="[C(4,3,1), SM(10)]", reward=0.8, status="ok", reason="", val_accuracy=0.8,
        test_accuracy=None, parameters=10, flops=10, steps=1, restarts=0, wall_time_s=1.0,
    )  # fmt: skip
    store.record_result(result, epsilon=1.0, worker="inline", attempts=1, state={})
    store.close()
    return run_dir


def test_a_finished_seed_search_is_copied_not_changed(tmp_path):
    old = _stored(tmp_path, "1.0:1")
    before = (old / "search.db").read_bytes()
    config = qc.Config(dataset="digits", search_dir=str(tmp_path / "mine"), seed_search=str(old),
                       width_divisor=2, schedule="1.0:1", score_size=100, replay=10)  # fmt: skip
    run_dir = qc.run_search(config, _ctx(tmp_path))
    assert run_dir == tmp_path / "mine" and (run_dir / "search.db").is_file()
    assert (old / "search.db").read_bytes() == before
    store = SearchStore.open(run_dir)
    assert [m.architecture for m in store.models()] == ["[C(4,3,1), SM(10)]"]
    store.close()


def test_a_stored_search_with_another_schedule_is_refused(tmp_path):
    old = _stored(tmp_path, "1.0:1")
    config = qc.Config(dataset="digits", search_dir=str(tmp_path / "mine"), seed_search=str(old),
                       width_divisor=2, schedule="1.0:2", score_size=100, replay=10)  # fmt: skip
    with pytest.raises(ConfigError, match="schedule"):
        qc.run_search(config, _ctx(tmp_path))


def test_retrain_saves_and_reuses_its_checkpoint(tmp_path):
    data = load_dataset("digits")
    config = qc.Config(
        dataset="digits",
        retrain_epochs=1,
        retrain_train_size=256,
        retrain_val_size=64,
        retrain_test_size=64,
        retrain_max_restarts=0,
    )
    model = _record(1, "[C(4,3,1), SM(10)]", 0.8, 1.0)
    path = tmp_path / "ck.pt"
    ctx = _ctx(tmp_path)
    first = qc.retrain(model, data, config, path, ctx)
    assert first["status"] == "ok" and 0.0 <= first["test_accuracy"] <= 1.0
    assert first["steps"] == 2  # 256 images in batches of 128, one epoch
    stamp = path.stat().st_mtime_ns
    again = qc.retrain(model, data, config, path, ctx)
    assert path.stat().st_mtime_ns == stamp and again["test_accuracy"] == first["test_accuracy"]
    other = dataclasses.replace(config, retrain_seed=1)  # another recipe: trained again
    qc.retrain(model, data, other, path, ctx)
    assert path.stat().st_mtime_ns != stamp
