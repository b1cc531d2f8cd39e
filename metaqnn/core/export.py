"""Export a trained model so that it leaves the package: a TorchScript (or ONNX) file that
plain ``torch`` loads and that takes [0, 1] pixels.

The exported module is :class:`PixelInputModel`: the input normalisation the model was trained
with (per-channel ``mean`` and ``std`` buffers) followed by the model, so a user feeds
``(N, C, H, W)`` float32 pixels in [0, 1] and gets ``(N, classes)`` logits. A TorchScript file
carries its description as JSON in ``_extra_files`` (:data:`METADATA_FILE`)::

    extra = {"metadata.json": ""}
    model = torch.jit.load("model.ts.pt", _extra_files=extra)
    info = json.loads(extra["metadata.json"])  # architecture, input_shape, mean, std, ...

Formats are entries of :data:`EXPORTERS`; a new one is a dict entry. Files are written to a
temporary file in the target folder and renamed (atomic, :mod:`metaqnn.core.outputs`); an
existing file is refused unless ``force=True``, and a folder, device or read-only place at the
target is refused before any work.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import json
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from metaqnn.core.checkpoint import Checkpoint, load_checkpoint
from metaqnn.core.data import load_dataset
from metaqnn.core.outputs import atomic_write, check_output_path
from metaqnn.errors import CheckpointError, ConfigError, MetaQNNError
from metaqnn.runinfo import package_version

#: Name of the JSON description inside a TorchScript file's ``_extra_files``.
METADATA_FILE = "metadata.json"

#: Version of the exported files' layout and metadata.
EXPORT_VERSION = 1

#: Images in the example batch used for tracing and checking (batch-statistics norms need > 1).
EXAMPLE_BATCH = 4

#: torch's deprecation notices of TorchScript (still the portable format this module writes).
_JIT_DEPRECATED = r"`torch\.jit\.\w+` is deprecated"

#: Largest difference allowed between the exported module and the model on the example batch.
CHECK_ATOL = 1e-4


class PixelInputModel(nn.Module):
    """A classifier of [0, 1] pixels: ``model((pixels - mean) / std)``; scriptable.

    Args:
        model: Maps normalised images (N, C, H, W) to logits (N, classes).
        mean: Per-channel mean of the normalisation, in pixel units.
        std: Per-channel standard deviation of the normalisation, in pixel units (positive).

    Raises:
        ConfigError: If ``mean`` and ``std`` differ in length or a ``std`` is not positive.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        mean, std = [float(m) for m in mean], [float(s) for s in std]
        if not mean or len(mean) != len(std) or min(std) <= 0:
            raise ConfigError(f"bad normalisation: mean {tuple(mean)}, std {tuple(std)}")
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Logits (N, classes) of pixels (N, C, H, W) in [0, 1]."""
        return self.model((pixels - self.mean) / self.std)  # (N, classes)


# --------------------------------------------------------------------------- formats
#: ``write(module, example, tmp_path, metadata) -> method`` writes ``module`` (eval mode, on
#: the CPU) to ``tmp_path`` and names how (e.g. ``"script"``).
Writer = Callable[[nn.Module, torch.Tensor, Path, dict[str, Any]], str]


@dataclass(frozen=True)
class Exporter:
    """A file format: its default file suffix and the function that writes it."""

    suffix: str
    write: Writer


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


def _to_torchscript(module: nn.Module, example: torch.Tensor) -> tuple[Any, str]:
    """``torch.jit.script`` of ``module``, else ``torch.jit.trace`` on ``example``: the first
    that converts and reproduces the module's logits on ``example``, and its name."""
    converters = {
        "script": lambda: torch.jit.script(module),
        "trace": lambda: torch.jit.trace(module, example, check_trace=False),
    }
    failures = []
    for method, convert in converters.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # deprecation and tracer notices: checked below
                converted = convert()
            _check_same(converted, module, example, method)
            return converted, method
        except Exception as exc:  # scripting fails on many constructs: trace instead
            failures.append(f"{method}: {_one_line(exc)}")
    raise ConfigError(f"cannot export to TorchScript ({'; '.join(failures)})")


def _check_same(
    exported: Callable[[torch.Tensor], torch.Tensor],
    module: nn.Module,
    example: torch.Tensor,
    method: str,
) -> None:
    """Refuse an export whose logits differ from the module's on the example batch."""
    with torch.no_grad():
        want, got = module(example), exported(example)
    if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-4, atol=CHECK_ATOL):
        raise ConfigError(
            f"the export ({method}) does not reproduce the model: logits {tuple(got.shape)} vs "
            f"{tuple(want.shape)}, largest difference {(got - want).abs().max().item():.3g}"
        )


def _write_torchscript(
    module: nn.Module, example: torch.Tensor, tmp: Path, metadata: dict[str, Any]
) -> str:
    script, method = _to_torchscript(module, example)
    metadata = {**metadata, "method": method}
    extra = {METADATA_FILE: json.dumps(metadata, indent=2, sort_keys=True)}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _JIT_DEPRECATED, FutureWarning)
        torch.jit.save(script, str(tmp), _extra_files=extra)
    return method


def _write_onnx(
    module: nn.Module, example: torch.Tensor, tmp: Path, metadata: dict[str, Any]
) -> str:
    try:  # torch's exporter needs both; neither is a dependency of metaqnn
        onnx = importlib.import_module("onnx")
        importlib.import_module("onnxscript")
    except ImportError:
        raise ConfigError(
            "ONNX export needs the onnx and onnxscript packages: pip install onnx onnxscript"
        ) from None
    batch = torch.export.Dim("batch", min=2)  # batch-statistics norms need two images or more
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # the exporter's notices; its progress goes to stdout
        torch.onnx.export(
            module, (example,), str(tmp), input_names=["pixels"], output_names=["logits"],
            dynamic_shapes={"pixels": {0: batch}}, external_data=False, dynamo=True,
            verbose=False,
        )  # fmt: skip
    proto = onnx.load(str(tmp))
    for key, value in {**metadata, "method": "torch.export"}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.save(proto, str(tmp))
    return "torch.export"


#: Format name -> exporter.
EXPORTERS: dict[str, Exporter] = {
    "torchscript": Exporter(".ts.pt", _write_torchscript),
    "onnx": Exporter(".onnx", _write_onnx),
}


def exporter(format: str) -> Exporter:
    """The :class:`Exporter` of a format name, or a ConfigError listing the known ones."""
    if format not in EXPORTERS:
        raise ConfigError(
            f"unknown export format {format!r}; choose one of {', '.join(sorted(EXPORTERS))}"
        )
    return EXPORTERS[format]


# --------------------------------------------------------------------------- export
def _example(model: nn.Module, example_input: torch.Tensor | None) -> torch.Tensor:
    """The example pixels: ``example_input``, else a seeded batch of the model's input shape."""
    if example_input is not None:
        return example_input.detach().to("cpu", torch.float32)
    shape = getattr(model, "input_shape", None)
    if shape is None:
        raise ConfigError("example_input is needed: the model has no input_shape attribute")
    generator = torch.Generator().manual_seed(0)
    return torch.rand((EXAMPLE_BATCH, *shape), generator=generator)  # (N, C, H, W) in [0, 1]


def export_model(
    model: nn.Module,
    mean: Sequence[float],
    std: Sequence[float],
    path: str | os.PathLike[str],
    *,
    format: str = "torchscript",
    example_input: torch.Tensor | None = None,
    metadata: dict[str, Any] | None = None,
    force: bool = False,
) -> Path:
    """Write ``model`` behind its input normalisation as a file that takes [0, 1] pixels.

    The model is copied to the CPU in eval mode (``model`` itself is not changed), wrapped in a
    :class:`PixelInputModel`, converted (TorchScript: scripted, else traced on the example
    input), checked against the wrapper on the example input and written atomically.

    Args:
        model: Maps normalised images (N, C, H, W) to logits (N, classes).
        mean: Per-channel mean of the normalisation the model was trained with.
        std: Per-channel standard deviation of that normalisation.
        path: The file to write; its folder is created.
        format: A key of :data:`EXPORTERS` (``"torchscript"`` or ``"onnx"``).
        example_input: Pixels (N, C, H, W) in [0, 1] to trace and check with; default a seeded
            random batch of ``model.input_shape`` (an :class:`~metaqnn.core.nets.ArchitectureNet`
            has one).
        metadata: JSON-able entries to store with the file (they override the defaults:
            input shape, mean, std, format, versions, creation time).
        force: Overwrite an existing file.

    Returns:
        The path written.

    Raises:
        ConfigError: Unknown format, existing file without ``force``, a path that cannot be
            written (a folder, a device, a read-only place: found before any work), bad
            normalisation, a missing example input, a missing optional package, or an export
            that does not reproduce the model.
    """
    spec = exporter(format)
    path = check_output_path(path, force=force, option="export path")
    example = _example(model, example_input)
    if len(mean) != example.shape[1]:
        raise ConfigError(
            f"normalisation has {len(mean)} channels, the input has {example.shape[1]}"
        )
    module = PixelInputModel(_cpu_copy(model), mean, std).eval()
    info = {
        "export_version": EXPORT_VERSION,
        "format": format,
        "input": "float32 pixels in [0, 1], shape (N, C, H, W); output: logits (N, classes)",
        "input_shape": [int(n) for n in example.shape[1:]],
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "torch": torch.__version__,
        "metaqnn": package_version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **(metadata or {}),
    }
    return atomic_write(path, lambda tmp: spec.write(module, example, tmp, info))


def _cpu_copy(model: nn.Module) -> nn.Module:
    """A CPU copy of ``model`` in eval mode with its parameters out of autograd, and its
    parametrizations (weight norm) baked into plain weights: scripted parametrizations fail
    at run time, and the baked weight is the value the parametrization computes."""
    clone = copy.deepcopy(model).to("cpu").eval()
    for module in list(clone.modules()):
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    for parameter in clone.parameters():
        parameter.requires_grad_(False)
    return clone


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata stored in an exported file (and a check that it loads).

    Args:
        path: A TorchScript (``.pt``) or ONNX (``.onnx``) file written by :func:`export_model`.

    Returns:
        The JSON metadata as a dict (empty if the file has none).

    Raises:
        ConfigError: If the file cannot be read as such.
    """
    path = Path(path)
    try:
        if path.suffix == ".onnx":
            onnx = importlib.import_module("onnx")
            props = onnx.load(str(path), load_external_data=False).metadata_props
            return {p.key: json.loads(p.value) for p in props}
        extra = {METADATA_FILE: ""}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", _JIT_DEPRECATED, FutureWarning)
            torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        return json.loads(extra[METADATA_FILE]) if extra[METADATA_FILE] else {}
    except Exception as exc:  # many types on a bad file
        raise ConfigError(f"{path}: not a readable exported model ({_one_line(exc)})") from None


# --------------------------------------------------------------------------- checkpoints
def checkpoint_normalization(ckpt: Checkpoint) -> tuple[list[float], list[float], str]:
    """The normalisation a checkpoint's model expects: ``(mean, std, source)``.

    ``metrics["normalization"]`` as ``metaqnn train`` records it; for checkpoints without it,
    the statistics of its dataset loaded as ``metaqnn train`` loads it (default validation
    split, the training seed), with ``source`` saying so.

    Raises:
        CheckpointError: One line naming the file, if the record is malformed or there is none
            and the dataset cannot be loaded.
    """
    norm = ckpt.metrics.get("normalization")
    source = "checkpoint"
    if norm is None:
        seed = ckpt.train_config.seed if ckpt.train_config is not None else 0
        try:
            data = load_dataset(ckpt.dataset, seed=seed)
        except MetaQNNError as exc:
            raise CheckpointError(
                f"{ckpt.path}: no normalization in its metrics, and the statistics of its "
                f"dataset cannot be had: {exc}"
            ) from None
        norm, source = {"mean": data.mean, "std": data.std}, f"dataset {data.name} (seed {seed})"
    try:
        mean, std = [float(m) for m in norm["mean"]], [float(s) for s in norm["std"]]
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{ckpt.path}: metrics['normalization'] is not mean/std") from None
    channels = ckpt.input_shape[0]
    if len(mean) != channels or len(std) != channels or min(std) <= 0:
        raise CheckpointError(
            f"{ckpt.path}: normalization mean {mean}, std {std} does not fit {channels} "
            "channel(s) with positive std"
        )
    return mean, std, source


def default_export_path(checkpoint_path: str | os.PathLike[str], format: str) -> Path:
    """Beside the checkpoint, with the format's suffix (``model.pt`` -> ``model.ts.pt``)."""
    return Path(checkpoint_path).with_suffix(exporter(format).suffix)


def export_checkpoint(
    checkpoint_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str] | None = None,
    *,
    format: str = "torchscript",
    force: bool = False,
) -> Path:
    """Export a checkpoint written by ``metaqnn train`` (see :func:`export_model`).

    The file's metadata holds the architecture, dataset, classes, input shape, mean and std,
    net config, the checkpoint's path and accuracies, and whether predictions depend on the
    batch (learners with ``batchstat`` norms normalise with each batch's statistics).

    Args:
        checkpoint_path: The checkpoint.
        out_path: The file to write; default :func:`default_export_path`.
        format: A key of :data:`EXPORTERS`.
        force: Overwrite an existing file.

    Returns:
        The path written.

    Raises:
        CheckpointError: A missing or bad checkpoint, or no normalisation to be had for it.
        ConfigError: As :func:`export_model`; also when ``out_path`` is the checkpoint.
    """
    exporter(format)  # an unknown format fails before the checkpoint is read
    out = Path(out_path) if out_path is not None else default_export_path(checkpoint_path, format)
    if out.resolve() == Path(checkpoint_path).resolve():
        raise ConfigError(f"{out} is the checkpoint itself; export to another file")
    check_output_path(out, force=force)  # before loading anything
    ckpt = load_checkpoint(checkpoint_path)
    mean, std, source = checkpoint_normalization(ckpt)
    metadata = {
        "architecture": str(ckpt.architecture),
        "dataset": ckpt.dataset,
        "num_classes": ckpt.num_classes,
        "classes": list(range(ckpt.num_classes)),
        "input_shape": list(ckpt.input_shape),
        "normalization_source": source,
        "net_config": asdict(ckpt.net_config),
        "batch_dependent": "batchstat" in ckpt.net_config.norm,
        "checkpoint": str(checkpoint_path),
        "checkpoint_created": ckpt.created,
        "metrics": {
            k: ckpt.metrics[k]
            for k in ("val_accuracy", "test_accuracy")
            if isinstance(ckpt.metrics.get(k), int | float)
        },
    }
    return export_model(
        ckpt.build_model("cpu"), mean, std, out, format=format, metadata=metadata, force=force
    )
