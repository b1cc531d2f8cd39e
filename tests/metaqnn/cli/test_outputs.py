"""``--out`` of ``metaqnn train`` and ``metaqnn export``: a bad path is one line before any
work, an existing file needs ``--force``, and only regular files are ever replaced (issue 22)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import metaqnn.core.training
from envs.layers import Architecture
from metaqnn.cli.main import main
from metaqnn.core.checkpoint import save_checkpoint
from metaqnn.core.nets import NetConfig, build_model
from metaqnn.core.outputs import atomic_save, check_output_path
from metaqnn.errors import ConfigError

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:FutureWarning")

ARCH = Architecture.parse("[C(4,3,1), P(2,2), FC(8), SM(10)]")
TRAIN = ["train", "[C(4,3,1), SM(10)]", "--dataset", "digits", "--steps", "2", "--no-progress"]


def _one_line_error(capsys, *argv: str) -> str:
    code = main(list(argv))
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("metaqnn: error: "), lines
    assert captured.out == ""
    return lines[0]


@pytest.fixture
def no_training(monkeypatch):
    """Training that fails the test: the --out check must come first."""

    def train(*args, **kwargs):
        raise AssertionError("training started before --out was checked")

    monkeypatch.setattr(metaqnn.core.training, "train_architecture", train)


def _bad_paths(tmp_path: Path) -> list[tuple[Path, str]]:
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    os.mkfifo(tmp_path / "pipe")
    return [
        (tmp_path / "folder", "is a folder"),
        (tmp_path / "file" / "m.pt", "is not a folder"),
        (tmp_path / "pipe", "not a regular file"),
        (Path("/dev/null"), "not a regular file"),
        (Path("/proc/metaqnn-test.pt"), "cannot write in /proc"),
    ]


def test_train_refuses_a_bad_out_before_training(capsys, tmp_path, no_training):
    for path, problem in _bad_paths(tmp_path):
        line = _one_line_error(capsys, *TRAIN, "--out", str(path), "--force")
        assert f"--out {path}: " in line and problem in line, line
    assert (tmp_path / "pipe").exists() and Path("/dev/null").is_char_device()


def test_train_does_not_overwrite_without_force(capsys, tmp_path):
    out = tmp_path / "m.pt"
    out.write_text("precious")
    line = _one_line_error(capsys, *TRAIN, "--out", str(out))
    assert str(out) in line and "--force" in line and out.read_text() == "precious"
    assert main([*TRAIN, "--out", str(out), "--force"]) == 0
    assert "checkpoint     " in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]  # no temporary left
    assert "state_dict" in torch.load(out, weights_only=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_train_refuses_a_read_only_folder(capsys, tmp_path, no_training):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    line = _one_line_error(capsys, *TRAIN, "--out", str(folder / "m.pt"))
    assert "cannot write in" in line


def test_export_refuses_a_bad_out(capsys, tmp_path):
    model = build_model(ARCH, in_channels=1, input_size=8, config=NetConfig())
    ckpt = save_checkpoint(
        tmp_path / "c.pt", architecture=ARCH, net_config=NetConfig(), train_config=None,
        dataset="digits", input_shape=(1, 8, 8), state_dict=model.state_dict(),
        metrics={"normalization": {"mean": [0.3], "std": [0.4]}},
    )  # fmt: skip
    (tmp_path / "x").mkdir()
    for path, problem in _bad_paths(tmp_path / "x"):
        line = _one_line_error(capsys, "export", str(ckpt), "--out", str(path), "--force")
        assert str(path) in line and problem in line, line
    assert Path("/dev/null").is_char_device()


def test_the_helpers(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ConfigError, match="not a regular file"):
        atomic_save({"a": 1}, tmp_path / "pipe")
    with pytest.raises(ConfigError, match="is a folder"):
        atomic_save({"a": 1}, tmp_path)
    out = atomic_save({"a": 1}, tmp_path / "new" / "a.pt")
    assert torch.load(out) == {"a": 1}
    with pytest.raises(ConfigError, match="already exists"):
        check_output_path(out)
    assert check_output_path(out, force=True) == out
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["a.pt"]
