"""Datasets as normalised tensors on a device, with a fast in-memory batch iterator.

Each dataset is a :class:`~metaqnn.core.datasets.DatasetSpec` in the
:data:`~metaqnn.core.datasets.DATASETS` registry (:mod:`metaqnn.core.datasets`, with the file
readers). :func:`load_dataset` reads one once (no per-sample Python loops, no PIL), holds a
seeded validation split out of the official training set, normalises all splits with the
per-channel statistics of the remaining training images and puts them on a device.

Files are looked for under the data root (the ``root`` argument, else ``$METAQNN_DATA``, else
``~/.cache/metaqnn/data``), which is only read unless ``download=True``. Derived files (extracted
idx files, decoded JPEGs) go to the cache (``$METAQNN_CACHE``, else ``~/.cache/metaqnn``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from metaqnn.core.datasets import (  # the paths and the catalogue live with the registry
    DATASETS,
    DatasetSpec,
    FilesMissing,
    PathLike,
    cache_dir,
    data_root,
    describe,
)
from metaqnn.errors import ConfigError, DataFormatError, DatasetNotFoundError, UnknownDatasetError

__all__ = [
    "Dataset",
    "Split",
    "cache_dir",
    "clear_memo",
    "data_root",
    "dataset_names",
    "describe",
    "get_spec",
    "iterate_batches",
    "load_dataset",
]


@dataclass(frozen=True)
class Split:
    """One split of a dataset, resident on a device.

    Attributes:
        x: Images, normalised, float32, shape (N, C, H, W).
        y: Integer class labels, int64, shape (N,).
    """

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, device: torch.device | str) -> Split:
        """This split on another device."""
        return Split(self.x.to(device), self.y.to(device))


def iterate_batches(
    split: Split,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x, y)`` mini-batches of a split by tensor indexing (no DataLoader, no copies
    to the host).

    Args:
        split: The split to iterate over.
        batch_size: Examples per batch.
        shuffle: Draw a fresh permutation (from ``generator``, on the CPU) for this pass.
        generator: CPU random generator for the permutation; seeds the order.
        drop_last: Skip a final batch smaller than ``batch_size``.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    n = len(split)
    order = torch.randperm(n, generator=generator).to(split.x.device) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:
            yield split.x[start : start + batch_size], split.y[start : start + batch_size]
        else:
            index = order[start : start + batch_size]
            yield split.x[index], split.y[index]


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset: three normalised splits on one device and the statistics used.

    Attributes:
        name: Registry name.
        spec: Its registry entry.
        train: Training images left after the validation hold-out.
        val: Validation images held out of the official training set (may be empty).
        test: The official test set (for ``digits``, a fixed stratified hold-out).
        mean: Per-channel mean of ``train`` in [0, 1] pixel units.
        std: Per-channel standard deviation of ``train`` in [0, 1] pixel units.
        source: The data as results should quote it (e.g. "CIFAR-10 (JPEG q75)").
    """

    name: str
    spec: DatasetSpec
    train: Split
    val: Split
    test: Split
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        as_tensor = lambda v: torch.tensor(v, dtype=x.dtype, device=x.device).view(-1, 1, 1)  # noqa: E731
        return as_tensor(self.mean), as_tensor(self.std)  # (C, 1, 1) each

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """Map [0, 1] pixels, shape (..., C, H, W), to normalised model inputs."""
        mean, std = self._stats(pixels)
        return (pixels - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Map normalised inputs, shape (..., C, H, W), back to [0, 1] pixels."""
        mean, std = self._stats(x)
        return x * std + mean


_MEMO: dict[tuple, Dataset] = {}  # (name, root, val_size, seed, device) -> Dataset
_MEMO_SIZE = 8


def dataset_names() -> list[str]:
    """Names of the registered datasets, in registry order."""
    return list(DATASETS)


def get_spec(name: str) -> DatasetSpec:
    """The registry entry of ``name``.

    Raises:
        UnknownDatasetError: If ``name`` is not registered; the message lists the known names.
    """
    if name not in DATASETS:
        raise UnknownDatasetError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    return DATASETS[name]


def clear_memo() -> None:
    """Forget the datasets :func:`load_dataset` keeps for repeated calls in this process."""
    _MEMO.clear()


def _check(x: torch.Tensor, y: torch.Tensor, spec: DatasetSpec, origin: str) -> None:
    """Raise :class:`DataFormatError` unless ``x``/``y`` are images and labels of ``spec``."""
    problem = ""
    if x.dtype not in (torch.uint8, torch.float32) or tuple(x.shape[1:]) != spec.input_shape:
        problem = f"images of {x.dtype} {tuple(x.shape)}, expected uint8 (N, *{spec.input_shape})"
    elif y.dtype != torch.int64 or tuple(y.shape) != (x.shape[0],):
        problem = f"labels of {y.dtype} {tuple(y.shape)} for {x.shape[0]} images"
    elif len(y) and not 0 <= int(y.min()) <= int(y.max()) < spec.num_classes:
        problem = f"labels in [{int(y.min())}, {int(y.max())}], expected [0, {spec.num_classes})"
    if problem:
        raise DataFormatError(f"{spec.name}: {origin} holds {problem}")


def _unit(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A new float32 tensor on ``device`` of images in [0, 1] (uint8 is divided by 255)."""
    if x.dtype == torch.uint8:
        return x.to(device).float().div_(255.0)
    return x.to(device, torch.float32, copy=True)


def split_record(data: Dataset, seed: int) -> dict[str, int]:
    """How ``data`` was split, as a checkpoint records it: the ``seed`` given to
    :func:`load_dataset` and the validation size, from which ``metaqnn evaluate`` rebuilds the
    same validation images."""
    return {"seed": int(seed), "val_size": len(data.val)}


def load_dataset(
    name: str,
    *,
    root: PathLike | None = None,
    val_size: int | None = None,
    device: torch.device | str = "cpu",
    seed: int = 0,
    download: bool = False,
) -> Dataset:
    """Load a registered dataset as normalised train/val/test splits on ``device``.

    Repeated calls with the same arguments in one process return the same tensors (do not
    modify them in place); :func:`clear_memo` forgets them.

    Args:
        name: A name from :func:`dataset_names`.
        root: Data root; default ``$METAQNN_DATA``, else ``~/.cache/metaqnn/data``.
        val_size: Training images held out for validation (0 for none); default the spec's.
        device: Device of the returned tensors.
        seed: Seeds the permutation that picks the validation images.
        download: Let torchvision download missing files into the root.

    Returns:
        The dataset, normalised with the per-channel mean and std of its ``train`` split.

    Raises:
        UnknownDatasetError: If ``name`` is not registered.
        ConfigError: If ``val_size`` is negative or leaves no training images.
        DatasetNotFoundError: If the files are missing and cannot be downloaded.
        DataFormatError: If the files are corrupt or hold the wrong shape or dtype.
    """
    spec = get_spec(name)
    path = data_root(root)
    n_val = spec.default_val_size if val_size is None else val_size
    if isinstance(n_val, bool) or not isinstance(n_val, int) or n_val < 0:
        raise ConfigError(f"val_size must be a non-negative integer, got {val_size!r}")
    device = torch.device(device)
    key = (spec.name, "" if spec.name == "digits" else str(path), n_val, seed, str(device))
    if key in _MEMO:
        return _MEMO[key]

    try:
        raw = spec.loader(path, cache_dir(), download)
    except FilesMissing as err:
        raise DatasetNotFoundError(
            f"dataset {spec.name!r} not found under {path} ({err}); {spec.hint.format(root=path)}"
        ) from None
    _check(raw.train_x, raw.train_y, spec, raw.origin)
    _check(raw.test_x, raw.test_y, spec, raw.origin)
    n_train = len(raw.train_y)
    if n_val >= n_train:
        raise ConfigError(
            f"val_size={n_val} must be smaller than the {n_train} training images of {spec.name}"
        )

    order = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = order[:n_val], order[n_val:]
    train_x = _unit(raw.train_x[train_idx], device)  # (N_train, C, H, W) in [0, 1]
    mean = train_x.mean(dim=(0, 2, 3)).view(-1, 1, 1)  # (C, 1, 1)
    std = train_x.std(dim=(0, 2, 3)).clamp_min(1e-8).view(-1, 1, 1)  # (C, 1, 1)

    def split(x: torch.Tensor, y: torch.Tensor) -> Split:  # x: fresh (N, C, H, W) in [0, 1]
        return Split(x.sub_(mean).div_(std), y.to(device))

    dataset = Dataset(
        name=spec.name,
        spec=spec,
        val=split(_unit(raw.train_x[val_idx], device), raw.train_y[val_idx]),
        test=split(_unit(raw.test_x, device), raw.test_y),
        train=split(train_x, raw.train_y[train_idx]),  # last: mean and std were taken from it
        mean=tuple(mean.flatten().tolist()),
        std=tuple(std.flatten().tolist()),
        source=raw.source,
    )
    if len(_MEMO) >= _MEMO_SIZE:
        _MEMO.pop(next(iter(_MEMO)))  # forget the oldest
    _MEMO[key] = dataset
    return dataset
