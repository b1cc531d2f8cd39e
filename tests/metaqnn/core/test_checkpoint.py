"""Tests of metaqnn.core.checkpoint: round trip and every corruption case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from envs.layers import Architecture
from metaqnn.core.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from metaqnn.core.nets import NetConfig, build_model
from metaqnn.core.training import TrainConfig
from metaqnn.errors import CheckpointError

ARCH = Architecture.parse("[C(4,3,1), P(2,2), FC(8), SM(3)]")


def _save(path: Path, norm: str = "batch", **changes) -> torch.nn.Module:
    config = NetConfig(norm=norm)
    model = build_model(ARCH, in_channels=1, input_size=8, config=config)
    fields = {
        "architecture": ARCH,
        "net_config": config,
        "train_config": TrainConfig(epochs=3),
        "dataset": "digits",
        "input_shape": (1, 8, 8),
        "state_dict": model.state_dict(),
        "metrics": {"val_accuracy": 0.5, "curve": [0.1, np.float32(0.2)], "n": np.int64(3)},
    }
    save_checkpoint(path, **{**fields, **changes})
    return model


@pytest.mark.parametrize("norm", ["none", "batch", "weight"])
def test_round_trip_rebuilds_identical_model(tmp_path, norm):
    path = tmp_path / "runs" / "model.pt"
    model = _save(path, norm).eval()
    ckpt = load_checkpoint(path)
    assert ckpt.architecture == ARCH and ckpt.net_config == NetConfig(norm=norm)
    assert ckpt.train_config == TrainConfig(epochs=3)
    assert (ckpt.dataset, ckpt.input_shape, ckpt.num_classes) == ("digits", (1, 8, 8), 3)
    assert ckpt.metrics == {"val_accuracy": 0.5, "curve": [0.1, pytest.approx(0.2)], "n": 3}
    assert set(ckpt.versions) == {"torch", "python", "metaqnn"} and ckpt.created
    x = torch.randn(5, 1, 8, 8)  # (N, C, H, W)
    torch.testing.assert_close(ckpt.build_model()(x), model(x), rtol=0, atol=0)
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temporary left


def test_file_is_a_plain_dict_loadable_with_weights_only(tmp_path):
    path = tmp_path / "model.pt"
    _save(path, train_config=None)
    data = torch.load(path, weights_only=True)
    assert data["format_version"] == FORMAT_VERSION and data["architecture"] == str(ARCH)
    assert data["input_shape"] == [1, 8, 8] and data["num_classes"] == 3
    assert load_checkpoint(path).train_config is None


def test_unplain_metrics_are_refused_at_save(tmp_path):
    path = tmp_path / "model.pt"
    with pytest.raises(CheckpointError, match=r"metrics\['bad'\] is a object"):
        _save(path, metrics={"bad": object()})
    assert not path.exists() and list(tmp_path.iterdir()) == []


def _payload(tmp_path: Path) -> dict:
    path = tmp_path / "good.pt"
    _save(path)
    return torch.load(path, weights_only=True)


def _corrupt(tmp_path: Path, case: str) -> Path:
    path = tmp_path / f"{case}.pt"
    if case == "missing":
        return path
    if case in ("garbage", "empty", "truncated"):
        good = tmp_path / "good.pt"
        _save(good)
        content = {"garbage": b"not a torch file at all", "empty": b""}.get(case)
        path.write_bytes(content if content is not None else good.read_bytes()[:300])
        return path
    if case == "unsafe_pickle":
        torch.save({"format_version": 1, "x": Path("/")}, path)
        return path
    if case == "not_a_dict":
        torch.save([1, 2, 3], path)
        return path
    data = _payload(tmp_path)
    edits = {
        "version": lambda d: d.update(format_version=2),
        "missing_key": lambda d: d.pop("state_dict"),
        "bad_architecture": lambda d: d.update(architecture="[C(4,3,1), XX(2), SM(3)]"),
        "bad_net_config": lambda d: d.update(net_config={**d["net_config"], "norm": "bogus"}),
        "unbuildable": lambda d: d.update(input_shape=[1, 2, 2]),
        "missing_weight": lambda d: d["state_dict"].pop("classifier.2.weight"),
        "extra_weight": lambda d: d["state_dict"].update(extra=torch.zeros(1)),
        "wrong_shape": lambda d: d["state_dict"].update({"classifier.2.weight": torch.zeros(4, 8)}),
        "metrics_list": lambda d: d.update(metrics=[1, 2]),
        "bad_classes": lambda d: d.update(num_classes="three"),
        "other_classes": lambda d: d.update(num_classes=4),
        "other_norm": lambda d: d.update(net_config={**d["net_config"], "norm": "weight"}),
    }
    edits[case](data)
    torch.save(data, path)
    return path


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("missing", "no such checkpoint file"),
        ("garbage", "not a readable torch checkpoint"),
        ("empty", "not a readable torch checkpoint"),
        ("truncated", "not a readable torch checkpoint"),
        ("unsafe_pickle", "not a readable torch checkpoint"),
        ("not_a_dict", "holds a list"),
        ("version", "format_version 2"),
        ("missing_key", "missing keys ['state_dict']"),
        ("bad_architecture", "XX"),
        ("bad_net_config", "bogus"),
        ("unbuildable", "cannot be built"),
        ("missing_weight", "missing ['classifier.2.weight']"),
        ("extra_weight", "unexpected ['extra']"),
        ("wrong_shape", "wrong shape ['classifier.2.weight']"),
        ("metrics_list", "metrics is a list, not a dict"),
        ("bad_classes", "bad contents"),
        ("other_classes", "num_classes 4 does not match"),
        ("other_norm", "does not match"),
    ],
)
def test_every_corruption_is_a_one_line_checkpoint_error_naming_the_path(tmp_path, case, fragment):
    path = _corrupt(tmp_path, case)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and fragment in message
    assert "\n" not in message
