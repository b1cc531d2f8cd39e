"""Tests of ``metaqnn export``: what it prints, and its one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from envs.layers import Architecture
from metaqnn.cli.main import main
from metaqnn.core.checkpoint import save_checkpoint
from metaqnn.core.nets import NetConfig, build_model

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:FutureWarning")

ARCH = Architecture.parse("[C(4,3,1), P(2,2), FC(8), SM(10)]")


def _checkpoint(path: Path, norm: str = "batch") -> Path:
    model = build_model(ARCH, in_channels=1, input_size=8, config=NetConfig(norm=norm))
    metrics = {"normalization": {"mean": [0.3], "std": [0.4]}}
    return save_checkpoint(
        path, architecture=ARCH, net_config=NetConfig(norm=norm), train_config=None,
        dataset="digits", input_shape=(1, 8, 8), state_dict=model.state_dict(), metrics=metrics,
    )  # fmt: skip


def _one_line_error(capsys, *argv: str) -> str:
    code = main(list(argv))
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("metaqnn: error: "), err
    return lines[0]


def test_export_prints_path_input_and_how_to_load(capsys, tmp_path):
    ckpt = _checkpoint(tmp_path / "best.pt", norm="weight+batchstat")
    assert main(["export", str(ckpt)]) == 0
    out = capsys.readouterr().out
    written = tmp_path / "best.ts.pt"
    assert written.is_file()
    assert f"exported       {written} (torchscript, scripted)" in out
    assert "shape (N, 1, 8, 8)" in out and "mean 0.3; std 0.4" in out
    assert f'torch.jit.load("{written}")' in out and str(ARCH) in out
    assert "depend on the batch" in out  # a batch-statistics learner says so
    pixels = torch.rand(6, 1, 8, 8)
    assert torch.jit.load(str(written))(pixels).shape == (6, 10)


def test_out_and_force(capsys, tmp_path):
    ckpt = _checkpoint(tmp_path / "m.pt")
    out = tmp_path / "deploy" / "model.pt"
    assert main(["export", str(ckpt), "--out", str(out)]) == 0
    assert f"exported       {out}" in capsys.readouterr().out
    line = _one_line_error(capsys, "export", str(ckpt), "--out", str(out))
    assert str(out) in line and "--force" in line
    assert main(["export", str(ckpt), "--out", str(out), "--force"]) == 0


def test_bad_input_is_one_line(capsys, tmp_path):
    assert "no such checkpoint" in _one_line_error(capsys, "export", str(tmp_path / "none.pt"))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert str(bad) in _one_line_error(capsys, "export", str(bad))
    ckpt = _checkpoint(tmp_path / "m.pt")
    line = _one_line_error(capsys, "export", str(ckpt), "--format", "tflite")
    assert "tflite" in line and "torchscript" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt", "m.pt"]
