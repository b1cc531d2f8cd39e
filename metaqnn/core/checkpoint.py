"""Checkpoints of trained models: a plain dict that carries everything needed to rebuild one.

The file is ``torch.save`` of a dict of plain types and tensors (so it loads with
``weights_only=True``): the format version, the architecture string, the net and training
configs, the dataset and input shape, the state dict, metrics, versions and creation time,
and (optional: older files lack it) the ``split`` that held out the validation images (its
``seed`` and ``val_size``), so that evaluating on "val" uses the images training did not see.
It is written atomically (:func:`metaqnn.core.outputs.atomic_save`). Loading refuses, in one
line naming the file, other kinds of checkpoint (a GTN teacher, a learned optimizer, an
exported model) and weights that are not finite (a diverged model).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from envs.layers import Architecture, ArchitectureError
from metaqnn.core.nets import ArchitectureNet, NetConfig, build_model
from metaqnn.core.outputs import atomic_save
from metaqnn.core.training import TrainConfig
from metaqnn.errors import CheckpointError, ConfigError
from metaqnn.runinfo import package_version

FORMAT_VERSION = 1

#: Keys every checkpoint holds.
REQUIRED_KEYS = (
    "format_version", "architecture", "net_config", "train_config", "dataset", "input_shape",
    "num_classes", "state_dict", "metrics", "versions", "created",
)  # fmt: skip


#: Keys whose values must be of a type (the others are checked by parsing them).
_KINDS: dict[str, type] = {
    "dataset": str, "state_dict": dict, "metrics": dict, "versions": dict, "created": str,
}  # fmt: skip


#: ``kind`` of other checkpoints -> what they are, and where to use them.
_OTHER_KINDS: dict[str, str] = {
    "gtn-meta": "a GTN teacher checkpoint, not a model checkpoint (use it with "
    "--gtn-checkpoint or `metaqnn gtn eval`)",
    "dd-meta": "a distilled-data teacher checkpoint, not a model checkpoint (use it with "
    "--gtn-checkpoint or `metaqnn gtn eval`)",
    "lopt-es": "a learned-optimizer checkpoint, not a model checkpoint (use it with "
    "`metaqnn lopt eval`)",
    "poison": "a poisoning-attack checkpoint, not a model checkpoint",
}


def _non_finite(tensors: dict[str, Any]) -> str:
    """The name of the first floating-point tensor holding a NaN or an infinity ("" if none)."""
    for name, value in tensors.items():
        if (isinstance(value, torch.Tensor) and value.is_floating_point()
                and not bool(torch.isfinite(value).all())):  # fmt: skip
            return name
    return ""


def _plain(value: Any, where: str, path: Path) -> Any:
    """``value`` as plain types and CPU tensors (lists for tuples), or a CheckpointError."""
    if value is None:
        return value
    for kind in (bool, int, float, str):  # exact types: subclasses may not unpickle safely
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]", path) for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v, f"{where}[{k!r}]", path) for k, v in value.items()}
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a numpy scalar
        return value.item()
    raise CheckpointError(
        f"cannot save {path}: {where} is a {type(value).__name__}, not a plain value or tensor"
    )


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    architecture: Architecture,
    net_config: NetConfig,
    train_config: TrainConfig | None,
    dataset: str,
    input_shape: tuple[int, int, int],
    state_dict: dict[str, torch.Tensor],
    metrics: dict[str, Any],
    split: dict[str, int] | None = None,
) -> Path:
    """Write a checkpoint atomically (parent folders are created).

    Args:
        path: Where to write it.
        architecture: The model's architecture.
        net_config: How the architecture was built.
        train_config: How it was trained (None if not by :func:`metaqnn.core.training.train_model`).
        dataset: Name of the dataset it was trained on.
        input_shape: ``(channels, height, width)`` of its inputs.
        state_dict: The model's state dict (saved on the CPU).
        metrics: Results to keep with it: plain values, lists, str-keyed dicts, tensors.
        split: How the dataset was split: ``{"seed": ..., "val_size": ...}`` as given to
            :func:`metaqnn.core.data.load_dataset` (None: not recorded).

    Returns:
        The path written.

    Raises:
        CheckpointError: If ``metrics`` holds something other than plain values, or a weight
            is not finite (a diverged model is not saved as a model).
    """
    path = Path(path)
    plain = {
        "format_version": FORMAT_VERSION,
        "architecture": str(architecture),
        "net_config": dataclasses.asdict(net_config),
        "train_config": None if train_config is None else dataclasses.asdict(train_config),
        "dataset": str(dataset),
        "input_shape": [int(n) for n in input_shape],
        "num_classes": architecture.num_classes,
        "metrics": dict(metrics),
        "versions": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "metaqnn": package_version(),
        },
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "split": None if split is None else {k: int(v) for k, v in split.items()},
    }
    bad = _non_finite(state_dict)
    if bad:
        raise CheckpointError(f"cannot save {path}: tensor {bad!r} has non-finite values")
    payload = {k: _plain(v, k, path) for k, v in plain.items()}
    payload["state_dict"] = {k: v.detach().cpu() for k, v in state_dict.items()}
    return atomic_save(payload, path)


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        path: The file it was read from.
        architecture: The architecture.
        net_config: How it was built.
        train_config: How it was trained, if recorded.
        dataset: Name of the dataset it was trained on.
        input_shape: ``(channels, height, width)`` of its inputs.
        num_classes: Classes of its output.
        state_dict: The weights, on ``map_location``.
        metrics: The results saved with it.
        versions: Versions of torch, Python and metaqnn that wrote it.
        created: ISO time of writing (UTC).
        split: ``{"seed", "val_size"}`` of the dataset split it was trained on (None in
            checkpoints that predate the record).
    """

    path: Path
    architecture: Architecture
    net_config: NetConfig
    train_config: TrainConfig | None
    dataset: str
    input_shape: tuple[int, int, int]
    num_classes: int
    state_dict: dict[str, torch.Tensor] = field(repr=False)
    metrics: dict[str, Any]
    versions: dict[str, str]
    created: str
    split: dict[str, int] | None = None

    def build_model(self, device: torch.device | str = "cpu") -> ArchitectureNet:
        """Rebuild the trained module.

        Args:
            device: Where to put it.

        Returns:
            The :class:`~metaqnn.core.nets.ArchitectureNet` with the saved weights, in eval mode.

        Raises:
            CheckpointError: If the weights do not fit the architecture.
        """
        channels, size, _ = self.input_shape
        with torch.random.fork_rng(devices=[]):  # the throwaway init leaves the global RNG be
            model = build_model(
                self.architecture, in_channels=channels, input_size=size, config=self.net_config
            )
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[-1].strip()
            raise CheckpointError(
                f"{self.path}: state dict does not match {self.architecture}: {first}"
            ) from None
        return model.to(device).eval()


def _is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive (a zip with ``constants.pkl`` and code)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/constants.pkl") for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _split(raw: Any) -> dict[str, int] | None:
    """The recorded split as ``{"seed", "val_size"}`` ints (None when not recorded)."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) != {"seed", "val_size"}:
        raise ValueError(f"split {raw!r} is not {{'seed': ..., 'val_size': ...}}")
    return {"seed": int(raw["seed"]), "val_size": int(raw["val_size"])}


def _fail(path: Path, problem: str) -> CheckpointError:
    return CheckpointError(f"{path}: {' '.join(problem.split())}")  # always one line


def _check_state_dict(ckpt: Checkpoint) -> None:
    """Compare names and shapes with the architecture built on the meta device (no memory)."""
    channels, size, _ = ckpt.input_shape
    with torch.device("meta"):
        model = build_model(
            ckpt.architecture, in_channels=channels, input_size=size, config=ckpt.net_config,
            device="meta",
        )  # fmt: skip
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(getattr(v, "shape", ())) for k, v in ckpt.state_dict.items()}
    missing, unexpected = sorted(expected.keys() - found), sorted(found.keys() - expected)
    wrong = sorted(k for k in expected.keys() & found if expected[k] != found[k])
    if missing or unexpected or wrong:
        details = [
            f"{label} {names[:3]}{' ...' if len(names) > 3 else ''}"
            for label, names in (("missing", missing), ("unexpected", unexpected),
                                 ("wrong shape", wrong))
            if names
        ]  # fmt: skip
        raise _fail(
            ckpt.path, f"state dict does not match {ckpt.architecture}: {'; '.join(details)}"
        )


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (``torch.load(weights_only=True)``).

    Args:
        path: The file.
        map_location: Where to put the tensors (as for ``torch.load``).

    Returns:
        The :class:`Checkpoint`; its state dict fits its architecture.

    Raises:
        CheckpointError: A one-line message naming the path and the problem: missing file,
            not a torch file (truncated, garbage, unsafe pickle), another kind of file (a GTN
            teacher, a learned optimizer, an exported model, a folder), another format
            version, missing keys, bad architecture, config or split, weights that do not fit
            or are not finite.
    """
    path = Path(path)
    if path.is_dir():
        raise _fail(path, "is a folder, not a model checkpoint file (`metaqnn train --out`)")
    if not path.is_file():
        raise _fail(path, "no such checkpoint file")
    if _is_torchscript(path):  # torch.load would hand it to torch.jit.load
        raise _fail(path, "is an exported TorchScript model (`metaqnn export`), not a model "
                    "checkpoint; load it with torch.jit.load")  # fmt: skip
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch.load raises many types on corrupt input
        message = (str(exc).strip().splitlines() or [""])[0][:200]
        problem = f"not a readable torch checkpoint ({type(exc).__name__}: {message})"
        raise _fail(path, problem) from exc
    if not isinstance(data, dict):
        raise _fail(path, f"holds a {type(data).__name__}, not a checkpoint dict")
    kind = data.get("kind")
    if kind is not None and "architecture" not in data:
        what = _OTHER_KINDS.get(str(kind), f"a {kind!r} checkpoint, not a model checkpoint")
        raise _fail(path, f"is {what}")
    if data.get("format_version") != FORMAT_VERSION:
        version = data.get("format_version")
        raise _fail(path, f"format_version {version!r}, expected {FORMAT_VERSION}")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise _fail(path, f"missing keys {missing}")
    for key, kind in _KINDS.items():
        if not isinstance(data[key], kind):
            raise _fail(path, f"{key} is a {type(data[key]).__name__}, not a {kind.__name__}")
    bad = _non_finite(data["state_dict"])
    if bad:
        raise _fail(path, f"tensor {bad!r} has non-finite values (NaN or inf): a diverged model")
    try:
        architecture = Architecture.parse(data["architecture"])
        net_config = NetConfig(**data["net_config"])
        raw_train = data["train_config"]
        train_config = None if raw_train is None else TrainConfig(**raw_train)
        shape = tuple(int(n) for n in data["input_shape"])
        num_classes = int(data["num_classes"])
        split = _split(data.get("split"))
    except (ArchitectureError, ConfigError, TypeError, ValueError) as exc:
        raise _fail(path, f"bad contents: {exc}") from None
    if len(shape) != 3 or shape[1] != shape[2] or min(shape) <= 0:
        raise _fail(path, f"input_shape {list(shape)} is not [channels, size, size]")
    ckpt = Checkpoint(
        path=path,
        architecture=architecture,
        net_config=net_config,
        train_config=train_config,
        dataset=data["dataset"],
        input_shape=shape,  # type: ignore[arg-type]
        num_classes=num_classes,
        state_dict=data["state_dict"],
        metrics=data["metrics"],
        versions=data["versions"],
        created=data["created"],
        split=split,
    )
    if num_classes != architecture.num_classes:
        raise _fail(path, f"num_classes {num_classes} does not match {architecture}")
    try:
        _check_state_dict(ckpt)
    except ArchitectureError as exc:
        raise _fail(path, f"architecture cannot be built on its input_shape: {exc}") from None
    return ckpt
