"""Results that are nonsense are said to be: diverged training, non-finite weights, checkpoints
of another kind, and the validation split a checkpoint was trained with (issue 22)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest
import torch

from envs.layers import Architecture
from gtn.generator import GeneratorConfig
from gtn.meta import load_meta_checkpoint
from gtn.teacher import GTNTeacher, TeacherConfig
from metaqnn.cli.evaluate import checkpoint_data
from metaqnn.cli.main import main
from metaqnn.core.checkpoint import load_checkpoint, save_checkpoint
from metaqnn.core.data import load_dataset
from metaqnn.core.divergence import divergence, loss_limit
from metaqnn.core.nets import NetConfig, build_model
from metaqnn.core.training import TrainConfig, train_architecture
from metaqnn.errors import CheckpointError, ConfigError

ARCH = Architecture.parse("[C(4,3,1), P(2,2), FC(8), SM(10)]")
TEACHER = Path(__file__).resolve().parents[3] / "gtn" / "pretrained" / "mnist.pt"


def _checkpoint(path: Path, **changes) -> Path:
    model = build_model(ARCH, in_channels=1, input_size=8, config=NetConfig())
    fields = {
        "architecture": ARCH, "net_config": NetConfig(), "train_config": TrainConfig(seed=3),
        "dataset": "digits", "input_shape": (1, 8, 8), "state_dict": model.state_dict(),
        "metrics": {},
    }  # fmt: skip
    return save_checkpoint(path, **{**fields, **changes})


def _one_line_error(capsys, *argv: str) -> str:
    code = main(list(argv))
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("metaqnn: error: "), lines
    return lines[0]


# ------------------------------------------------------------------ divergence
def test_the_divergence_rule():
    assert loss_limit(10) == pytest.approx(10 * math.log(10))
    assert divergence(2.0, 10) == "" and divergence(20.0, 10) == ""  # overfit, not diverged
    assert "exploded" in divergence(24.0, 10)
    assert "not finite" in divergence(math.nan, 10)
    assert "not finite" in divergence(1.0, 10, train_loss=math.inf)


def test_an_exploded_loss_is_a_diverged_training():
    data = load_dataset("digits")
    config = TrainConfig(epochs=1, lr=1e6, max_restarts=0)
    result = train_architecture(ARCH, data.train, data.val, config)
    assert result.status == "diverged" and "exploded" in result.reason, result.reason
    assert math.isnan(result.val_loss)


def test_train_refuses_to_save_a_diverged_model(capsys, tmp_path):
    out = tmp_path / "d.pt"
    code = main(["train", "[C(8,3,1), SM(10)]", "--dataset", "digits", "--epochs", "1",
                 "--lr", "1e6", "--out", str(out), "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith("metaqnn: training diverged: ") and "no checkpoint" in err[0]
    assert not out.exists()


# ------------------------------------------------------------------ non-finite weights
def test_non_finite_weights_are_refused_at_save_and_load(capsys, tmp_path):
    path = _checkpoint(tmp_path / "m.pt")
    data = torch.load(path, weights_only=True)
    name = next(k for k in data["state_dict"] if k.endswith("weight"))
    data["state_dict"][name][0] = math.nan
    torch.save(data, path)
    with pytest.raises(CheckpointError, match=rf"{path}: tensor '{name}' has non-finite"):
        load_checkpoint(path)
    line = _one_line_error(capsys, "evaluate", "accuracy", str(path))
    assert str(path) in line and name in line
    with pytest.raises(CheckpointError, match="non-finite"):
        _checkpoint(tmp_path / "n.pt", state_dict=data["state_dict"])
    assert not (tmp_path / "n.pt").exists()


def test_a_non_finite_teacher_is_refused(tmp_path):
    state = torch.load(TEACHER, weights_only=True)
    name = next(iter(state["teacher"]))
    state["teacher"][name] = torch.full_like(state["teacher"][name], math.nan)
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(ValueError, match=rf"nan.pt: teacher tensor '{name}' has non-finite"):
        load_meta_checkpoint(tmp_path / "nan.pt")


def test_gtn_reward_refuses_a_non_finite_teacher():
    from metaqnn.rewards.gtn import GTNReward

    gen = GeneratorConfig(channels=1, image_size=8, num_classes=10, noise_dim=8, hidden=16,
                          conv_channels=(4, 4))  # fmt: skip
    teacher = GTNTeacher(TeacherConfig(generator=gen, inner_steps=2, inner_batch=8))
    name, weight = next(iter(teacher.named_parameters()))
    with torch.no_grad():
        weight.fill_(math.inf)
    with pytest.raises(ConfigError, match=f"teacher tensor '{name}' has non-finite"):
        GTNReward(teacher, load_dataset("digits"))


# ------------------------------------------------------------------ kinds
def test_a_teacher_is_not_a_model_checkpoint(capsys, tmp_path):
    for argv in (["evaluate", "accuracy", str(TEACHER)],
                 ["export", str(TEACHER), "--out", str(tmp_path / "x.ts.pt")]):  # fmt: skip
        line = _one_line_error(capsys, *argv)
        assert f"{TEACHER}: is a GTN teacher checkpoint, not a model checkpoint" in line
        assert "--gtn-checkpoint" in line


def test_a_model_is_not_a_teacher_checkpoint(tmp_path):
    path = _checkpoint(tmp_path / "m.pt")
    with pytest.raises(ValueError, match=r"is a model checkpoint .* not a GTN teacher"):
        load_meta_checkpoint(path)


def test_an_exported_model_is_not_a_checkpoint(tmp_path):
    path = _checkpoint(tmp_path / "m.pt", metrics={"normalization": {"mean": [0.3], "std": [1]}})
    assert main(["export", str(path)]) == 0
    with pytest.raises(CheckpointError, match="exported TorchScript model"):
        load_checkpoint(tmp_path / "m.ts.pt")


# ------------------------------------------------------------------ split
def _args(**given) -> argparse.Namespace:
    base = {"data_root": None, "val_size": None, "device": "cpu", "seed": 0, "download": False}
    return argparse.Namespace(**{**base, **given})


def test_the_recorded_split_is_used(capsys, tmp_path):
    path = _checkpoint(tmp_path / "m.pt", split={"seed": 3, "val_size": 100})
    assert load_checkpoint(path).split == {"seed": 3, "val_size": 100}
    data = checkpoint_data(_args(), load_checkpoint(path), split="val")
    want = load_dataset("digits", seed=3, val_size=100)
    assert torch.equal(data.val.x, want.val.x) and torch.equal(data.train.y, want.train.y)
    assert main(["evaluate", "accuracy", str(path), "--split", "val"]) == 0
    captured = capsys.readouterr()
    assert "val split (100 images)" in captured.out and captured.err == ""


def test_an_old_checkpoint_uses_its_training_seed_and_warns(capsys, tmp_path):
    path = _checkpoint(tmp_path / "old.pt")  # no split recorded; trained with seed 3
    data = checkpoint_data(_args(), load_checkpoint(path), split="val")
    assert torch.equal(data.val.x, load_dataset("digits", seed=3).val.x)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("metaqnn: warning: ") and "seed 3" in err[0]


def test_train_records_its_split(capsys, tmp_path):
    out = tmp_path / "m.pt"
    argv = ["train", "[C(4,3,1), SM(10)]", "--dataset", "digits", "--steps", "2", "--seed", "5",
            "--val-size", "50", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert load_checkpoint(out).split == {"seed": 5, "val_size": 50}
