"""Exported and shipped teachers: ``gtn export`` writes fp16 weights without optimiser state,
the file teaches like its run (the same rewards up to fp16 rounding), a shipped name resolves
to its checked file wherever a teacher is asked for, and what an exported file cannot do is a
one-line error."""

from __future__ import annotations

import pytest
import torch

import gtn.pretrained as pretrained
from envs.layers import Architecture
from gtn.meta import checkpoint_file, load_meta_checkpoint
from metaqnn.cli import main
from metaqnn.rewards.spec import RewardSpec, build_reward
from tests.metaqnn.cli.test_cli import GTN_TINY


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("pretrained") / "gtn"
    assert main(["gtn", "train", "--outer-steps", "3", "--logdir", str(run), *GTN_TINY]) == 0
    return run


def test_export_is_small_fp16_and_teaches_like_its_run(capsys, teacher_run, tmp_path):
    out = tmp_path / "digits.pt"
    code, text, err = _run(capsys, "gtn", "export", str(teacher_run), "--out", str(out),
                           "--note", "gtn train ...")  # fmt: skip
    assert code == 0, err
    assert "sha256" in text and out.is_file()
    assert out.stat().st_size < checkpoint_file(teacher_run).stat().st_size
    state = load_meta_checkpoint(out)
    assert state["exported"] and state["optimizer"] == {} and state["history"] == []
    assert all(v.dtype == torch.float16 for v in state["teacher"].values()
               if v.is_floating_point())  # fmt: skip
    assert state["extra"]["export_note"] == "gtn train ..."
    arch = Architecture.parse("[C(16,3,1), P(2,2), FC(64), SM(10)]")
    rewards = [build_reward(RewardSpec(name="gtn", dataset="digits", gtn_checkpoint=str(p),
                                       score_size=200)).evaluate(arch).reward
               for p in (teacher_run, out)]  # fmt: skip
    assert rewards[1] == pytest.approx(rewards[0], abs=0.03)
    # an existing --out is kept unless --force
    code, _, err = _run(capsys, "gtn", "export", str(teacher_run), "--out", str(out))
    assert code == 2 and "--force" in err


def test_an_exported_teacher_cannot_be_resumed(capsys, teacher_run, tmp_path):
    out = tmp_path / "t.pt"
    assert main(["gtn", "export", str(teacher_run), "--out", str(out)]) == 0
    capsys.readouterr()
    code, _, err = _run(capsys, "gtn", "train", "--resume", str(out), "--outer-steps", "4")
    assert code == 2 and "cannot be resumed" in err and "--init-from" in err
    assert len(err.strip().splitlines()) == 1


def test_a_shipped_name_resolves_to_its_checked_file(capsys, teacher_run, tmp_path, monkeypatch):
    out = tmp_path / "tiny.pt"
    assert main(["gtn", "export", str(teacher_run), "--out", str(out)]) == 0
    entry = pretrained.Pretrained(file="tiny.pt", dataset="digits",
                                  sha256=pretrained.sha256(out), command="gtn train ...",
                                  about="a test teacher")  # fmt: skip
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    monkeypatch.setitem(pretrained.PRETRAINED, "tiny-digits", entry)
    monkeypatch.chdir(tmp_path)
    assert checkpoint_file("tiny-digits") == out
    reward = build_reward(RewardSpec(name="gtn", dataset="digits", gtn_checkpoint="tiny-digits",
                                     score_size=100))  # fmt: skip
    assert 0.0 <= reward(Architecture.parse("[C(16,3,1), SM(10)]")) <= 1.0
    capsys.readouterr()
    code, text, _ = _run(capsys, "gtn", "list")
    assert code == 0 and "tiny-digits" in text and entry.sha256[:12] in text
    # a damaged file is refused with its name
    out.write_bytes(out.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ValueError, match=r"tiny-digits.*damaged"):
        checkpoint_file("tiny-digits")
    argv = ["--reward", "gtn", "--gtn-checkpoint", "tiny-digits", "--schedule", "1.0:1"]
    line = _run(capsys, "search", "--dataset", "digits", *argv, "--logdir", str(tmp_path / "s"))[2]
    assert "damaged" in line and len(line.strip().splitlines()) == 1


def test_int8_export_is_smaller_and_teaches_like_its_run(teacher_run, tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "INT8_MIN_ELEMENTS", 256)  # the tiny teacher's tensors
    state = load_meta_checkpoint(teacher_run)
    fp16 = pretrained.export_teacher(state, tmp_path / "a.pt")
    int8 = pretrained.export_teacher(state, tmp_path / "b.pt", precision="int8")
    assert int8.stat().st_size < fp16.stat().st_size
    raw = torch.load(int8, weights_only=True)
    assert raw["teacher_int8"] and all(p["q"].dtype == torch.int8
                                       for p in raw["teacher_int8"].values())  # fmt: skip
    back = load_meta_checkpoint(int8)  # dequantised on load
    for name, weight in state["teacher"].items():
        got = back["teacher"][name].float()
        assert got.shape == weight.shape
        assert torch.allclose(got, weight.float(), atol=weight.abs().max().item() / 100 + 1e-3)
    arch = Architecture.parse("[C(16,3,1), P(2,2), FC(64), SM(10)]")
    rewards = [build_reward(RewardSpec(name="gtn", dataset="digits", gtn_checkpoint=str(p),
                                       score_size=200)).evaluate(arch).reward
               for p in (teacher_run, int8)]  # fmt: skip
    assert rewards[1] == pytest.approx(rewards[0], abs=0.05)
    with pytest.raises(ValueError, match="precision 'int4'"):
        pretrained.export_teacher(state, tmp_path / "c.pt", precision="int4")


def test_a_teacher_near_chance_says_so(capsys, tmp_path):
    # one outer step of a tiny teacher with a learning rate too small to teach anything
    argv = ["gtn", "train", "--outer-steps", "1", "--logdir", str(tmp_path / "g"), *GTN_TINY,
            "--init-lr", "1e-6"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "near chance" in out and "warning" in out


def test_every_shipped_teacher_is_there_small_and_checked():
    assert {"mnist", "digits"} <= set(pretrained.PRETRAINED)
    for name, entry in pretrained.PRETRAINED.items():
        path = pretrained.pretrained_file(name)  # the checksum matches
        assert path.stat().st_size <= 10 * 1024 * 1024, name
        state = load_meta_checkpoint(name)
        assert state["exported"] and state["extra"]["dataset"] == entry.dataset
