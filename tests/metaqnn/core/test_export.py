"""Tests of metaqnn.core.export: exported models load and predict in plain torch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from envs.layers import Architecture
from metaqnn.core.checkpoint import load_checkpoint, save_checkpoint
from metaqnn.core.data import load_dataset
from metaqnn.core.export import (
    EXPORTERS,
    METADATA_FILE,
    PixelInputModel,
    default_export_path,
    export_checkpoint,
    export_model,
    read_metadata,
)
from metaqnn.core.nets import NetConfig, build_model
from metaqnn.core.training import TrainConfig, train_architecture
from metaqnn.errors import CheckpointError, ConfigError

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:FutureWarning")

ARCH = Architecture.parse("[C(8,3,1), P(2,2), FC(16), SM(10)]")

#: Loads each exported file with plain torch, with metaqnn, envs and gtn made unimportable,
#: and saves its logits of the given pixels; argv: pixels file, then (model, logits) pairs.
PLAIN_TORCH = textwrap.dedent(
    """
    import json, sys

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("metaqnn", "envs", "gtn"):
                raise ImportError(f"{name} may not be imported here")
            return None

    sys.meta_path.insert(0, Blocker())
    import torch

    pixels = torch.load(sys.argv[1])
    for model_path, out_path in zip(sys.argv[2::2], sys.argv[3::2]):
        extra = {"metadata.json": ""}
        model = torch.jit.load(model_path, _extra_files=extra)
        meta = json.loads(extra["metadata.json"])
        with torch.no_grad():
            torch.save(model(pixels), out_path)
        print(json.dumps({"input_shape": meta["input_shape"], "mean": meta["mean"],
                          "architecture": meta["architecture"]}))
    assert not {"metaqnn", "envs", "gtn"} & {m.split(".")[0] for m in sys.modules}
    print("clean", "metaqnn" not in sys.modules)
    """
)


def _train_and_save(path: Path, norm: str) -> Path:
    data = load_dataset("digits")
    config = TrainConfig(steps=3, batch_size=64)
    net_config = NetConfig(norm=norm)
    result = train_architecture(ARCH, data.train, data.val, config, net_config=net_config)
    metrics = {"val_accuracy": result.val_accuracy,
               "normalization": {"mean": list(data.mean), "std": list(data.std)}}  # fmt: skip
    return save_checkpoint(
        path, architecture=ARCH, net_config=net_config, train_config=config, dataset="digits",
        input_shape=data.spec.input_shape, state_dict=result.state_dict(), metrics=metrics,
    )  # fmt: skip


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Checkpoints of a tiny net trained a few steps on digits: a plain one (BatchNorm) and a
    GTN-style learner (weight norm + batch statistics)."""
    root = tmp_path_factory.mktemp("export-ckpts")
    return {
        norm: _train_and_save(root / f"{norm.replace('+', '_')}.pt", norm)
        for norm in ("batch", "weight+batchstat")
    }


def _pixels(n: int = 16) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(7))  # (N, C, H, W)


def _package_logits(ckpt_path: Path, pixels: torch.Tensor) -> torch.Tensor:
    ckpt = load_checkpoint(ckpt_path)
    norm = ckpt.metrics["normalization"]
    mean = torch.tensor(norm["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(norm["std"]).view(1, -1, 1, 1)
    with torch.no_grad():
        return ckpt.build_model()((pixels - mean) / std)


def test_exported_models_predict_in_plain_torch_like_the_package(checkpoints, tmp_path):
    pixels = _pixels()
    torch.save(pixels, tmp_path / "pixels.pt")
    argv = []
    for norm, ckpt in checkpoints.items():
        out = export_checkpoint(ckpt, tmp_path / f"{ckpt.stem}.ts.pt")
        argv += [str(out), str(tmp_path / f"{ckpt.stem}.logits.pt")]
        assert read_metadata(out)["method"] == "script", norm
    run = subprocess.run(
        [sys.executable, "-I", "-c", PLAIN_TORCH, str(tmp_path / "pixels.pt"), *argv],
        cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert lines[-1] == "clean True"
    for line in lines[:-1]:
        info = json.loads(line)
        assert info["input_shape"] == [1, 8, 8] and info["architecture"] == str(ARCH)
    for norm, ckpt in checkpoints.items():
        got = torch.load(tmp_path / f"{ckpt.stem}.logits.pt")
        want = _package_logits(ckpt, pixels)
        assert got.shape == (16, 10)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, msg=norm)


def test_metadata_describes_the_model(checkpoints, tmp_path):
    ckpt = checkpoints["weight+batchstat"]
    out = export_checkpoint(ckpt, tmp_path / "learner.ts.pt")
    extra = {METADATA_FILE: ""}
    torch.jit.load(str(out), _extra_files=extra)
    meta = json.loads(extra[METADATA_FILE])
    norm = load_checkpoint(ckpt).metrics["normalization"]
    assert meta["architecture"] == str(ARCH) and meta["dataset"] == "digits"
    assert meta["num_classes"] == 10 and meta["classes"] == list(range(10))
    assert meta["mean"] == pytest.approx(norm["mean"]) and meta["std"] == pytest.approx(norm["std"])
    assert meta["net_config"]["norm"] == "weight+batchstat" and meta["batch_dependent"] is True
    assert meta["format"] == "torchscript" and meta["normalization_source"] == "checkpoint"
    assert "val_accuracy" in meta["metrics"]


def test_export_model_takes_any_module_and_traces_what_cannot_be_scripted(tmp_path):
    class Unscriptable(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(12, 3)
            self.flatten = lambda t: t.flatten(1)  # a lambda attribute defeats scripting

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(self.flatten(x))

    model = Unscriptable()
    pixels = torch.rand(5, 3, 2, 2)
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    out = export_model(model, mean, std, tmp_path / "sub" / "m.ts.pt", example_input=pixels,
                       metadata={"note": "hand-made"})  # fmt: skip
    meta = read_metadata(out)
    assert meta["method"] == "trace" and meta["note"] == "hand-made"
    assert meta["input_shape"] == [3, 2, 2]
    want = PixelInputModel(model, mean, std)(pixels)
    torch.testing.assert_close(torch.jit.load(str(out))(pixels), want, rtol=1e-5, atol=1e-5)
    assert model.training  # the model itself is left as it was
    with pytest.raises(ConfigError, match="example_input"):
        export_model(model, mean, std, tmp_path / "x.ts.pt")


def test_existing_out_is_refused_unless_forced_and_writes_are_atomic(checkpoints, tmp_path):
    out = tmp_path / "m.ts.pt"
    out.write_bytes(b"keep me")
    with pytest.raises(ConfigError, match="already exists"):
        export_checkpoint(checkpoints["batch"], out)
    assert out.read_bytes() == b"keep me"
    export_checkpoint(checkpoints["batch"], out, force=True)
    assert read_metadata(out)["architecture"] == str(ARCH)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ts.pt"]  # no temporary left
    with pytest.raises(ConfigError, match="checkpoint itself"):
        export_checkpoint(checkpoints["batch"], checkpoints["batch"], force=True)
    with pytest.raises(ConfigError, match="unknown export format 'tflite'"):
        export_checkpoint(checkpoints["batch"], tmp_path / "m.tfl", format="tflite")


def test_default_path_is_beside_the_checkpoint(tmp_path):
    assert set(EXPORTERS) == {"torchscript", "onnx"}
    assert default_export_path(tmp_path / "best.pt", "torchscript") == tmp_path / "best.ts.pt"
    assert default_export_path(tmp_path / "best.pt", "onnx") == tmp_path / "best.onnx"


def test_onnx_without_the_package_is_one_clear_error(checkpoints, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(ConfigError, match="pip install onnx") as info:
        export_checkpoint(checkpoints["batch"], tmp_path / "m.onnx", format="onnx")
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def _save_without_normalization(path: Path, dataset: str = "digits", **metrics) -> Path:
    model = build_model(ARCH, in_channels=1, input_size=8)
    return save_checkpoint(
        path, architecture=ARCH, net_config=NetConfig(), train_config=TrainConfig(seed=3),
        dataset=dataset, input_shape=(1, 8, 8), state_dict=model.state_dict(), metrics=metrics,
    )  # fmt: skip


def test_missing_normalization_falls_back_to_the_dataset_statistics(tmp_path):
    ckpt = _save_without_normalization(tmp_path / "old.pt")
    meta = read_metadata(export_checkpoint(ckpt, tmp_path / "old.ts.pt"))
    data = load_dataset("digits", seed=3)
    assert meta["mean"] == pytest.approx(list(data.mean))
    assert meta["std"] == pytest.approx(list(data.std))
    assert meta["normalization_source"] == "dataset digits (seed 3)"


def test_unusable_normalization_is_a_one_line_checkpoint_error(tmp_path):
    unknown = _save_without_normalization(tmp_path / "a.pt", dataset="nowhere")
    with pytest.raises(CheckpointError, match="no normalization") as info:
        export_checkpoint(unknown, tmp_path / "a.ts.pt")
    assert str(unknown) in str(info.value) and "\n" not in str(info.value)
    bad = _save_without_normalization(
        tmp_path / "b.pt", normalization={"mean": [0.1, 0.2], "std": [1.0, 1.0]}
    )
    with pytest.raises(CheckpointError, match="does not fit 1 channel"):
        export_checkpoint(bad, tmp_path / "b.ts.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.pt"]


def test_onnx_export_matches_the_package(checkpoints, tmp_path):
    """Runs where the optional packages are installed (``pip install metaqnn[onnx]``)."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from onnx.reference import ReferenceEvaluator

    pixels = _pixels(7)  # another batch size than the export's example
    for norm, ckpt in checkpoints.items():
        out = export_checkpoint(ckpt, tmp_path / f"{ckpt.stem}.onnx", format="onnx")
        meta = read_metadata(out)
        assert meta["architecture"] == str(ARCH) and meta["input_shape"] == [1, 8, 8]
        (got,) = ReferenceEvaluator(onnx.load(str(out))).run(None, {"pixels": pixels.numpy()})
        want = _package_logits(ckpt, pixels)
        torch.testing.assert_close(torch.from_numpy(got), want, rtol=1e-5, atol=1e-5, msg=norm)
