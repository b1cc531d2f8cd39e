"""``metaqnn export``: a checkpoint as a TorchScript (or ONNX) file that takes [0, 1] pixels."""

from __future__ import annotations

import argparse


def configure_export(p: argparse.ArgumentParser) -> None:
    """Options of ``metaqnn export``."""
    p.add_argument("checkpoint", help="a checkpoint written by `metaqnn train`")
    p.add_argument(
        "--format", default="torchscript", metavar="FORMAT",
        help="torchscript or onnx (needs: pip install onnx onnxscript)",
    )  # fmt: skip
    p.add_argument(
        "--out", default=None,
        help="file to write (default: beside the checkpoint, .ts.pt or .onnx)",
    )  # fmt: skip
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")


def _load_hint(path: str, format: str) -> str:
    if format == "onnx":
        return f'onnxruntime.InferenceSession("{path}").run(None, {{"pixels": pixels}})'
    return f'model = torch.jit.load("{path}"); logits = model(pixels)'


def run_export(args: argparse.Namespace) -> int:
    """Run ``metaqnn export``: write the file, then print where, what it takes and how to load."""
    from metaqnn.core.export import export_checkpoint, read_metadata

    path = export_checkpoint(args.checkpoint, args.out, format=args.format, force=args.force)
    meta = read_metadata(path)
    shape = ", ".join(str(n) for n in meta["input_shape"])
    mean = ", ".join(f"{m:.4g}" for m in meta["mean"])
    std = ", ".join(f"{s:.4g}" for s in meta["std"])
    how = {"script": "scripted", "trace": "traced"}.get(meta["method"], meta["method"])
    print(f"exported       {path} ({meta['format']}, {how})")
    print(f"model          {meta['architecture']} trained on {meta['dataset']}, "
          f"{meta['num_classes']} classes")  # fmt: skip
    print(f"input          float32 pixels in [0, 1], shape (N, {shape}); "
          f"normalised inside (mean {mean}; std {std})")  # fmt: skip
    print(f"output         logits (N, {meta['num_classes']})")
    print(f"load           {_load_hint(str(path), meta['format'])}")
    if meta.get("normalization_source", "checkpoint") != "checkpoint":
        print(f"note           no normalization in the checkpoint: used the statistics of "
              f"{meta['normalization_source']}")  # fmt: skip
    if meta.get("batch_dependent"):
        print("note           batch-statistics norms: predictions depend on the batch; "
              "predict many images at a time")  # fmt: skip
    return 0
