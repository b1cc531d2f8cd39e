"""The proxy-fidelity experiment's pieces: the real-data run with its proxies, config checks
and teacher paths (architecture sampling and families: ``common/test_architectures.py``; the
checkpointed constant-lr training: ``common/test_proxies.py``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from envs.layers import Architecture
from experiments.harness import CONFIG_DIR, REPO_ROOT, load_config
from experiments.proxy_fidelity import Config, real_run, resolve_teacher
from metaqnn.core.data import Split, load_dataset
from metaqnn.errors import ConfigError
from metaqnn.teacher.run import TeacherRun
from metaqnn.teacher.shapes import GTN_LEARNER

CONFIG = CONFIG_DIR / "proxy_fidelity.toml"


def test_real_run_scores_proxies_in_config_order_and_the_truth_on_test():
    data = load_dataset("digits", val_size=100)
    config = Config(dataset="digits", space="digits", val_size=100, train_size=64,
                    batch_size=16, long_epochs=2, proxy_epochs=(1.0, 0.25), score_size=50,
                    truth_size=60)  # fmt: skip
    arch = Architecture.parse("[C(4,3,1), P(2,2), FC(8), SM(10)]")
    train = Split(data.train.x[:64], data.train.y[:64])
    out = real_run(arch, data, train, config, GTN_LEARNER, torch.device("cpu"))
    assert [r["step"] for r in out["proxies"]] == [4, 1, 8]  # 1 epoch, 1/4 epoch, the long run
    assert 0 <= out["truth"] <= 1 and out["truth_s"] >= 0
    again = real_run(arch, data, train, config, GTN_LEARNER, torch.device("cpu"))
    assert again["proxies"][2]["accuracy"] == out["proxies"][2]["accuracy"]
    assert again["truth"] == out["truth"]


def test_real_run_rejects_proxies_that_round_to_the_same_step():
    data = load_dataset("digits", val_size=100)
    config = Config(dataset="digits", train_size=32, batch_size=16, long_epochs=2,
                    proxy_epochs=(0.25, 0.5))  # fmt: skip
    with pytest.raises(ConfigError, match="same step counts"):
        real_run(Architecture.parse("[SM(10)]"), data, Split(data.train.x[:32],
                 data.train.y[:32]), config, GTN_LEARNER, torch.device("cpu"))  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"proxy_epochs": (0.25, 6.0)}, r"proxy_epochs \[6.0\]"),
        ({"architectures": 2}, "architectures=2"),
        ({"train_size": 64}, "train_size=64 is below one batch"),
        ({"teachers": ("a",)}, "equally long"),
        ({"teachers": ("a", "b"), "teacher_labels": ("x", "x"),
          "teacher_settings": (TeacherRun(), TeacherRun()),
          "teacher_outer_steps": (1, 1)}, "distinct"),
        ({"lr": 0.0}, "lr=0.0"),
    ],
)  # fmt: skip
def test_config_rejects_bad_values(changes, match):
    with pytest.raises(ConfigError, match=match):
        dataclasses.replace(Config(), **changes)


@pytest.mark.parametrize("quick", [False, True])
def test_the_toml_config_loads(quick):
    config = load_config(Config, CONFIG, quick=quick)
    assert len(config.teachers) == 2 and config.architectures >= (3 if quick else 50)
    assert all(0 < e < config.long_epochs for e in config.proxy_epochs)
    if quick:  # a clean clone has no run folders: quick teachers are trained in scratch
        assert all(t.startswith("{work}/") for t in config.teachers)


def test_resolve_teacher(tmp_path):
    assert resolve_teacher("{work}/gtn", tmp_path) == tmp_path / "gtn"
    assert resolve_teacher("runs/gtn/x", tmp_path) == REPO_ROOT / "runs/gtn/x"
    assert resolve_teacher(str(tmp_path / "abs"), Path("/elsewhere")) == tmp_path / "abs"
