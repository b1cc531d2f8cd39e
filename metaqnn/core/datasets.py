"""The registered datasets: one :class:`DatasetSpec` per dataset in the :data:`DATASETS`
registry, and the loaders that read each one's official splits from the data root (torchvision's
files, scikit-learn's digits, or a tarball of CIFAR-10 JPEGs decoded once and cached) as
:class:`RawData`, with no per-sample Python loops and no PIL.

A loader is handed the data root and the cache folder and only reads the root unless asked to
download; derived files (extracted idx files, decoded JPEGs) go to the cache.
:func:`metaqnn.core.data.load_dataset` splits, normalises and places what a loader returns.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tarfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, NamedTuple

from metaqnn.errors import DataFormatError
from metaqnn.runlock import waiting_lock

if TYPE_CHECKING:  # torch is imported where images are read, so the registry is light
    import torch

DATA_ENV = "METAQNN_DATA"
CACHE_ENV = "METAQNN_CACHE"
PathLike = str | os.PathLike[str]
CIFAR10_TARBALL = "cifar10-jpeg.tar.gz"
DIGITS_TEST_SIZE = 297  # digits held out (stratified, fixed seed) as a test split: 1500 remain
_IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")  # fmt: skip
# What torchvision, gzip, tarfile, pickle and torch.load raise on unreadable files.
_READ_ERRORS = (RuntimeError, OSError, ValueError, AssertionError, EOFError, KeyError,
                pickle.UnpicklingError, tarfile.TarError)  # fmt: skip


class RawData(NamedTuple):
    """A loader's result: the official splits on the CPU, not normalised. Images are uint8 in
    [0, 255] or float32 in [0, 1], shape (N, C, H, W); labels int64 (N,). ``source`` names the
    data as results should quote it; ``origin`` names the files read, for error messages."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: str
    origin: str


Loader = Callable[[Path, Path, bool], RawData]  # loader(root, cache, download)


class FilesMissing(Exception):
    """Raised by a loader when its files are absent; :func:`metaqnn.core.data.load_dataset` adds
    the dataset's name and hint."""


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset.

    Attributes:
        name: Registry key, also the name of its search-space preset.
        channels: Image channels.
        image_size: Image height = width.
        num_classes: Number of classes; labels are ``0 .. num_classes - 1``.
        default_val_size: Training images held out for validation when no size is given.
        preset: Name of the matching preset in ``envs.space.PRESETS``.
        loader: Reads the official train/test splits from the data root.
        available: Whether the data root holds the files (reads and downloads nothing).
        hint: How to get the files; ``{root}`` stands for the data root.
        description: One line for humans and result tables.
    """

    name: str
    channels: int
    image_size: int
    num_classes: int
    default_val_size: int
    preset: str
    loader: Loader
    available: Callable[[Path], bool]
    hint: str
    description: str

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return (self.channels, self.image_size, self.image_size)


def _one_line(text: object, limit: int = 300) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _read_torchvision(cls_name: str, base: Path, download: bool) -> list[torch.Tensor]:
    """``[train_x, train_y, test_x, test_y]`` of a torchvision dataset class rooted at ``base``."""
    import torch
    from torchvision import datasets

    out: list[torch.Tensor] = []
    for train in (True, False):
        split = {"split": "train" if train else "test"} if cls_name == "SVHN" else {"train": train}
        ds = getattr(datasets, cls_name)(str(base), download=download, **split)
        x: Any = torch.as_tensor(ds.data)  # MNIST (N, H, W); CIFAR (N, H, W, C); SVHN (N, C, H, W)
        x = x.unsqueeze(1) if x.ndim == 3 else x
        x = x.permute(0, 3, 1, 2).contiguous() if cls_name.startswith("CIFAR") else x
        labels = ds.labels if cls_name == "SVHN" else ds.targets
        out += [x, torch.as_tensor(labels, dtype=torch.int64)]  # (N, C, H, W), (N,)
    return out


def _torchvision_loader(cls_name: str, files: tuple[str, ...], source: str) -> Loader:
    """A loader for a torchvision dataset whose ``files`` lie directly under the root."""

    def load(root: Path, cache: Path, download: bool) -> RawData:
        present = all((root / f).exists() for f in files)
        if not present and not download:
            raise FilesMissing(f"no {' and '.join(files)}")
        origin = ", ".join(str(root / f) for f in files)
        try:
            tensors = _read_torchvision(cls_name, root, download and not present)
        except _READ_ERRORS as err:
            if present:
                raise DataFormatError(f"cannot read {origin}: {_one_line(err)}") from err
            raise FilesMissing(f"download failed: {_one_line(err)}") from err
        return RawData(*tensors, source=source, origin=origin)

    return load


def _mnist_loader(cls_name: str, source: str) -> Loader:
    """A loader for torchvision's ``MNIST``-style classes (``MNIST``, ``FashionMNIST``).

    The ``.gz`` files in ``root/<cls_name>/raw`` are md5-checked, copied once to
    ``cache/torchvision/<cls_name>/raw`` and extracted there by torchvision, whose
    ``download=True`` finds them present and fetches nothing. The root is never written to,
    except by a real download (``download=True`` and files missing).
    """

    def load(root: Path, cache: Path, download: bool) -> RawData:
        from torchvision import datasets
        from torchvision.datasets.utils import check_integrity

        raw = root / cls_name / "raw"
        gz_files = [(raw / name, md5) for name, md5 in getattr(datasets, cls_name).resources]
        for path, md5 in gz_files:
            if path.is_file() and not check_integrity(path, md5):
                raise DataFormatError(
                    f"{path} is corrupt (its md5 is not {md5}); replace it with the official file"
                )
        if missing := [path.name for path, _ in gz_files if not path.is_file()]:
            if not download:
                raise FilesMissing(f"{raw} lacks {', '.join(missing)}")
            try:  # a real download, into the root
                _read_torchvision(cls_name, root, download=True)
            except _READ_ERRORS as err:
                raise FilesMissing(f"download failed: {_one_line(err)}") from err
        base = cache / "torchvision"
        target = base / cls_name / "raw"
        try:  # one process at a time fills the cache (torchvision extracts in place)
            with waiting_lock(base / cls_name / ".lock"):
                target.mkdir(parents=True, exist_ok=True)
                for path, _ in gz_files:
                    if not (target / path.name).is_file():  # copy, rename: never half a file
                        shutil.copyfile(path, target / f"{path.name}.part")
                        os.replace(target / f"{path.name}.part", target / path.name)
                tensors = _read_torchvision(cls_name, base, download=True)
        except _READ_ERRORS as err:
            raise DataFormatError(
                f"cannot read the idx files in {target} (delete that cache folder and retry): "
                f"{_one_line(err)}"
            ) from err
        return RawData(*tensors, source=source, origin=str(raw))

    return load


def _load_digits(root: Path, cache: Path, download: bool) -> RawData:
    """scikit-learn's 8x8 digits, 0..16 scaled to [0, 1], with a fixed stratified test split."""
    import numpy as np
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (1797, 1, 8, 8)
    y = torch.as_tensor(bunch.target, dtype=torch.int64)  # (1797,)
    train, test = train_test_split(
        np.arange(len(y)), test_size=DIGITS_TEST_SIZE, stratify=bunch.target, random_state=0
    )
    train, test = torch.as_tensor(np.sort(train)), torch.as_tensor(np.sort(test))
    return RawData(x[train], y[train], x[test], y[test], "scikit-learn digits", "scikit-learn")


def _decode_jpeg_tarball(tarball: Path) -> dict[str, torch.Tensor]:
    """Decode the ``train/<class>/*.jpg`` and ``test/<class>/*.jpg`` members of a tarball in
    ImageFolder order (classes sorted, then file names sorted), streaming it (no extraction)."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    members: dict[str, list[tuple[str, str, bytes]]] = {"train": [], "test": []}
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive:
            parts = PurePosixPath(member.name).parts  # ("train", class, file)
            if (member.isfile() and len(parts) == 3 and parts[0] in members
                    and parts[2].lower().endswith((".jpg", ".jpeg"))):  # fmt: skip
                data = archive.extractfile(member).read()  # type: ignore[union-attr]
                members[parts[0]].append((parts[1], parts[2], data))
    if not members["train"] or not members["test"]:
        raise DataFormatError(f"{tarball} holds no train/<class>/*.jpg and test/<class>/*.jpg")
    index = {cls: i for i, cls in enumerate(sorted({cls for cls, _, _ in members["train"]}))}
    out: dict[str, torch.Tensor] = {}
    for split, items in members.items():
        if unknown := {cls for cls, _, _ in items} - index.keys():
            raise DataFormatError(f"{tarball}: test classes {sorted(unknown)} are not in train")
        items.sort(key=lambda item: (item[0], item[1]))
        encoded = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for *_, data in items]
        with warnings.catch_warnings():  # torchvision 0.29 deprecates its decoders for torchcodec
            warnings.simplefilter("ignore", DeprecationWarning)
            images = decode_jpeg(encoded, mode=ImageReadMode.RGB)  # [(3, H, W)] * N
        out[f"{split}_x"] = torch.stack(images)  # (N, 3, H, W) uint8
        out[f"{split}_y"] = torch.tensor([index[cls] for cls, _, _ in items])  # (N,) int64
    return out


def _load_cifar10(root: Path, cache: Path, download: bool) -> RawData:
    """torchvision's pickled CIFAR-10 if present (or to be downloaded), else the JPEG tarball,
    decoded once and cached as a ``.pt`` keyed by the tarball's path, size and mtime."""
    import torch

    from gtn.io import atomic_save

    tarball = root / CIFAR10_TARBALL
    if (root / "cifar-10-batches-py").exists() or (download and not tarball.is_file()):
        return _torchvision_loader("CIFAR10", ("cifar-10-batches-py",), "CIFAR-10")(
            root, cache, download
        )
    if not tarball.is_file():
        raise FilesMissing(f"no cifar-10-batches-py and no {CIFAR10_TARBALL}")
    stat = tarball.stat()
    key = hashlib.sha256(f"{tarball}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    cached = cache / f"cifar10-jpeg-{key[:16]}.pt"
    culprit = cached if cached.is_file() else tarball
    try:
        with waiting_lock(cache / "cifar10-jpeg.lock"):  # one process decodes, the others wait
            if cached.is_file():
                blob = torch.load(cached, weights_only=True)
            else:
                blob = _decode_jpeg_tarball(tarball)
                atomic_save(blob, cached)
        tensors = [blob[k] for k in ("train_x", "train_y", "test_x", "test_y")]
    except DataFormatError:
        raise
    except _READ_ERRORS as err:
        raise DataFormatError(f"cannot read {culprit}: {_one_line(err)}") from err
    return RawData(*tensors, source="CIFAR-10 (JPEG q75)", origin=str(tarball))


def _has(*alternatives: tuple[str, ...]) -> Callable[[Path], bool]:
    """An availability check: every file of at least one alternative exists under the root."""
    return lambda root: any(all((root / f).exists() for f in files) for files in alternatives)


_DOWNLOAD = "pass download=True (--download) to fetch it with torchvision"
_IDX = ", or put the four raw idx .gz files (" + ", ".join(s + ".gz" for s in _IDX_STEMS) + ")"

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec("digits", 1, 8, 10, 300, "digits", _load_digits, lambda root: True,
                "it ships with scikit-learn: no files are needed",
                "scikit-learn digits: 8x8 grey, 10 classes, 1500 train+val / 297 test"),
    DatasetSpec("mnist", 1, 28, 10, 5000, "mnist", _mnist_loader("MNIST", "MNIST"),
                _has(tuple(f"MNIST/raw/{s}.gz" for s in _IDX_STEMS)),
                _DOWNLOAD + _IDX + " under {root}/MNIST/raw",
                "MNIST: 28x28 grey digits, 10 classes, 60000 train / 10000 test"),
    DatasetSpec("fashion-mnist", 1, 28, 10, 5000, "fashion-mnist",
                _mnist_loader("FashionMNIST", "Fashion-MNIST"),
                _has(tuple(f"FashionMNIST/raw/{s}.gz" for s in _IDX_STEMS)),
                _DOWNLOAD + _IDX + " under {root}/FashionMNIST/raw",
                "Fashion-MNIST: 28x28 grey clothes, 10 classes, 60000 train / 10000 test"),
    DatasetSpec("cifar10", 3, 32, 10, 5000, "cifar10", _load_cifar10,
                _has(("cifar-10-batches-py",), (CIFAR10_TARBALL,)),
                _DOWNLOAD + " into {root}/cifar-10-batches-py, or put " + CIFAR10_TARBALL
                + " (train/<class>/*.jpg, test/<class>/*.jpg) in {root}",
                "CIFAR-10: 32x32 RGB, 10 classes, 50000 train / 10000 test; results on "
                + CIFAR10_TARBALL + " are 'CIFAR-10 (JPEG q75)', never plain CIFAR-10"),
    DatasetSpec("svhn", 3, 32, 10, 5000, "svhn",
                _torchvision_loader("SVHN", ("train_32x32.mat", "test_32x32.mat"), "SVHN"),
                _has(("train_32x32.mat", "test_32x32.mat")),
                _DOWNLOAD + " (train_32x32.mat, test_32x32.mat) into {root}",
                "SVHN: 32x32 RGB house numbers, 10 classes, 73257 train / 26032 test"),
    DatasetSpec("cifar100", 3, 32, 100, 5000, "cifar100",
                _torchvision_loader("CIFAR100", ("cifar-100-python",), "CIFAR-100"),
                _has(("cifar-100-python",)), _DOWNLOAD + " into {root}/cifar-100-python",
                "CIFAR-100: 32x32 RGB, 100 classes, 50000 train / 10000 test"),
)}  # fmt: skip
"""The registry: dataset name -> spec. The name is also the search-space preset's name."""


def data_root(root: PathLike | None = None) -> Path:
    """The absolute data root: ``root``, else ``$METAQNN_DATA``, else ``~/.cache/metaqnn/data``."""
    chosen = root if root is not None else os.environ.get(DATA_ENV) or "~/.cache/metaqnn/data"
    return Path(chosen).expanduser().resolve()


def cache_dir() -> Path:
    """The absolute cache folder: ``$METAQNN_CACHE``, else ``~/.cache/metaqnn``."""
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/metaqnn").expanduser().resolve()


def describe(root: PathLike | None = None) -> list[dict[str, Any]]:
    """Per dataset: name, input_shape (C, H, W), num_classes, whether its files are available
    under the data root, the root, a description and how to get the files."""
    path = data_root(root)
    return [
        {"name": spec.name, "input_shape": spec.input_shape, "num_classes": spec.num_classes,
         "available": spec.available(path), "root": str(path), "description": spec.description,
         "hint": spec.hint.format(root=path)}
        for spec in DATASETS.values()
    ]  # fmt: skip
