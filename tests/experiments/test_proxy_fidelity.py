"""The proxy-fidelity experiment's pieces: architecture sampling, families, the checkpointed
constant-lr real-data run, config checks and teacher paths."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from envs.layers import Architecture
from envs.space import get_space
from experiments.harness import CONFIG_DIR, REPO_ROOT, load_config
from experiments.proxy_fidelity import (
    Config,
    epoch_label,
    families,
    real_run,
    resolve_teacher,
    sample_architectures,
    train_with_checkpoints,
)
from metaqnn.core.data import Split, load_dataset
from metaqnn.errors import ConfigError
from metaqnn.teacher.shapes import GTN_LEARNER

CONFIG = CONFIG_DIR / "proxy_fidelity.toml"


def _split(n: int, seed: int) -> Split:
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randn(n, 1, 4, 4, generator=g), torch.randint(0, 3, (n,), generator=g))


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))


def test_sample_architectures_distinct_seeded_and_in_draw_order():
    space = get_space("mnist").scale_widths(16)
    archs = sample_architectures(space, 12, seed=5)
    assert len(archs) == 12 and len({str(a) for a in archs}) == 12
    assert [str(a) for a in archs] == [str(a) for a in sample_architectures(space, 12, seed=5)]
    assert [str(a) for a in sample_architectures(space, 5, seed=5)] == [str(a) for a in archs[:5]]
    assert [str(a) for a in archs] != [str(a) for a in sample_architectures(space, 12, seed=6)]


def test_sample_architectures_fails_clearly_when_the_space_is_too_small():
    tiny = get_space("mnist").replace(max_depth=1, conv_filters=(4,), conv_kernels=(3,))
    with pytest.raises(ConfigError, match=r"only \d+ distinct architectures, not 50"):
        sample_architectures(tiny, 50, seed=0)


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        ("[GAP, SM(10)]", ["GAP", "shallow"]),
        ("[C(4,3,1), P(2,2), C(8,3,1), P(2,2), FC(16), SM(10)]", ["several pools", "FC"]),
        ("[C(4,3,1), C(4,3,1), C(4,3,1), C(4,3,1), C(4,3,1), C(4,3,1), SM(10)]", ["deep"]),
        ("[C(4,3,1), C(4,3,1), P(2,2), SM(10)]", ["other"]),
    ],
)
def test_families(text, tags):
    assert families(Architecture.parse(text)) == tags


@pytest.mark.parametrize(
    ("epochs", "label"), [(0.25, "1/4 epoch"), (0.3, "0.3 epoch"), (1.0, "1 epoch"),
                          (3.0, "3 epochs")],
)  # fmt: skip
def test_epoch_label(epochs, label):
    assert epoch_label(epochs) == label


def test_checkpoints_of_one_run_are_its_prefixes():
    """With a constant lr, the k-step proxy of a long run is exactly a k-step run."""
    train, score = _split(64, 0), _split(32, 1)
    kwargs = dict(lr=0.01, batch_size=8, weight_decay=5e-4, seed=3)
    long = train_with_checkpoints(_model(), train, score, [2, 9, 20], **kwargs)
    assert [r["step"] for r in long] == [2, 9, 20]
    assert all(0 <= r["accuracy"] <= 1 for r in long)
    assert long[0]["train_s"] <= long[1]["train_s"] <= long[2]["train_s"]
    assert long[0]["train_cpu_s"] <= long[1]["train_cpu_s"] <= long[2]["train_cpu_s"]
    assert all(r["score_s"] >= 0 and r["score_cpu_s"] >= 0 for r in long)
    short = train_with_checkpoints(_model(), train, score, [9], **kwargs)
    assert short[0]["accuracy"] == long[1]["accuracy"]
    assert short[0]["loss"] == pytest.approx(long[1]["loss"], rel=1e-6)
    other = train_with_checkpoints(_model(), train, score, [20], **{**kwargs, "seed": 4})
    assert other[0]["loss"] != pytest.approx(long[2]["loss"], rel=1e-6)  # the order matters


@pytest.mark.parametrize("checkpoints", [[], [0, 3], [3, 3], [5, 2]])
def test_checkpoints_must_be_increasing_positive(checkpoints):
    with pytest.raises(ConfigError, match="increasing positive"):
        train_with_checkpoints(_model(), _split(16, 0), _split(8, 1), checkpoints, lr=0.01,
                               batch_size=4, weight_decay=0.0, seed=0)  # fmt: skip


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
        ({"teachers": ("a", "b"), "teacher_labels": ("x", "x"), "teacher_args": ("", ""),
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
