"""Tests of metaqnn.core.data and metaqnn.core.datasets: the registry, loading, splits,
normalisation, caching and errors."""

from __future__ import annotations

import dataclasses
import gzip
import io
import tarfile
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from envs.space import PRESETS
from metaqnn.core import data, datasets
from metaqnn.core.data import Split, dataset_names, describe, iterate_batches, load_dataset
from metaqnn.errors import (
    ConfigError,
    DataFormatError,
    DatasetNotFoundError,
    MetaQNNError,
    UnknownDatasetError,
)

# --- registry -------------------------------------------------------------------------------


def test_registry_names_and_presets() -> None:
    names = dataset_names()
    assert names == ["digits", "mnist", "fashion-mnist", "cifar10", "svhn", "cifar100"]
    for name in names:
        spec = datasets.DATASETS[name]
        assert spec.name == spec.preset == name
        assert spec.preset in PRESETS
        space = PRESETS[spec.preset]
        assert (space.input_channels, space.input_size) == (spec.channels, spec.image_size)
        assert space.num_classes == spec.num_classes
    assert "JPEG q75" in datasets.DATASETS["cifar10"].description


def test_describe_reports_availability(tmp_path: Path) -> None:
    rows = {row["name"]: row for row in describe(tmp_path)}
    assert list(rows) == dataset_names()
    assert rows["digits"]["available"] is True
    assert rows["mnist"]["available"] is False
    assert rows["mnist"]["input_shape"] == (1, 28, 28)
    assert rows["cifar100"]["num_classes"] == 100
    assert str(tmp_path) in rows["mnist"]["hint"]


# --- digits ---------------------------------------------------------------------------------


def test_digits_loads_without_root() -> None:
    ds = load_dataset("digits")
    assert ds.train.x.shape[1:] == (1, 8, 8)
    assert len(ds.train) + len(ds.val) == 1500
    assert (len(ds.val), len(ds.test)) == (300, datasets.DIGITS_TEST_SIZE)
    for split in (ds.train, ds.val, ds.test):
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert split.y.min() >= 0 and split.y.max() <= 9
    assert set(ds.test.y.tolist()) == set(range(10))  # stratified
    mean, std = ds.train.x.mean(dim=(0, 2, 3)), ds.train.x.std(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.zeros(1), atol=1e-5)
    assert torch.allclose(std, torch.ones(1), atol=1e-4)
    assert ds.source == "scikit-learn digits"


def _image_rows(ds: data.Dataset, *splits: Split) -> list[tuple[int, ...]]:
    """The images of ``splits`` as sorted rows of 0..16 grey levels (a multiset)."""
    pixels = ds.denormalize(torch.cat([s.x for s in splits]))  # (N, 1, 8, 8) in [0, 1]
    return sorted(tuple(row) for row in (pixels * 16).round().flatten(1).long().tolist())


def test_digits_train_and_val_partition_the_training_images() -> None:
    ds = load_dataset("digits", val_size=300)
    full = load_dataset("digits", val_size=0)
    assert len(ds.train) + len(ds.val) == len(full.train) == 1500
    # same multiset of images and the sizes add up: no image is in both, none is lost
    assert _image_rows(ds, ds.train, ds.val) == _image_rows(full, full.train)
    assert _image_rows(ds, ds.test) == _image_rows(full, full.test)


def test_digits_split_depends_on_seed() -> None:
    a, b, c = (load_dataset("digits", seed=s) for s in (0, 0, 1))
    assert torch.equal(a.val.x, b.val.x) and torch.equal(a.val.y, b.val.y)
    assert _image_rows(a, a.val) != _image_rows(c, c.val)
    assert _image_rows(a, a.test) == _image_rows(c, c.test)  # the test split is fixed


def test_repeated_loads_are_memoised() -> None:
    assert load_dataset("digits", seed=3) is load_dataset("digits", seed=3)


def test_denormalize_maps_back_to_unit_pixels() -> None:
    ds = load_dataset("digits")
    pixels = ds.denormalize(ds.test.x)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
    assert torch.allclose(pixels * 16, (pixels * 16).round(), atol=1e-4)  # 0..16 levels
    assert torch.allclose(ds.normalize(pixels), ds.test.x, atol=1e-5)


def test_val_size_zero_gives_an_empty_split() -> None:
    ds = load_dataset("digits", val_size=0)
    assert len(ds.val) == 0 and ds.val.x.shape == (0, 1, 8, 8)
    assert len(ds.train) == 1500


@pytest.mark.parametrize("val_size", [1500, 10**6, -1])
def test_bad_val_size_is_a_config_error(val_size: int) -> None:
    with pytest.raises(ConfigError, match=str(val_size)):
        load_dataset("digits", val_size=val_size)


# --- iterate_batches ------------------------------------------------------------------------


def _toy_split(n: int = 23) -> Split:
    return Split(torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1), torch.arange(n))


def test_shuffled_batches_cover_every_example_once() -> None:
    split = _toy_split()
    gen = torch.Generator().manual_seed(0)
    batches = list(iterate_batches(split, 5, shuffle=True, generator=gen))
    assert [len(y) for _, y in batches] == [5, 5, 5, 5, 3]
    seen = torch.cat([y for _, y in batches])
    assert sorted(seen.tolist()) == list(range(23))
    assert not torch.equal(seen, torch.arange(23))
    for x, y in batches:
        assert torch.equal(x.view(-1).long(), y)


def test_drop_last_and_plain_order() -> None:
    split = _toy_split()
    batches = list(iterate_batches(split, 5, drop_last=True))
    assert [y.tolist() for _, y in batches] == [list(range(i, i + 5)) for i in range(0, 20, 5)]
    assert list(iterate_batches(_toy_split(3), 5, drop_last=True)) == []


def test_same_generator_seed_same_order() -> None:
    def order(seed: int) -> list[int]:
        gen = torch.Generator().manual_seed(seed)
        return torch.cat([y for _, y in iterate_batches(_toy_split(), 4, shuffle=True,
                                                         generator=gen)]).tolist()  # fmt: skip

    assert order(7) == order(7)
    assert order(7) != order(8)


# --- MNIST and Fashion-MNIST from the real shared data ----------------------------------------


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_idx_datasets(name: str, shared_data_root: Path, metaqnn_cache: Path) -> None:
    ds = load_dataset(name, root=shared_data_root, val_size=5000)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (55000, 5000, 10000)
    for split in (ds.train, ds.val, ds.test):
        assert split.x.shape[1:] == (1, 28, 28) and split.x.dtype == torch.float32
        assert split.y.dtype == torch.int64
        assert split.y.min() == 0 and split.y.max() == 9
    assert abs(ds.train.x.mean().item()) < 1e-4 and abs(ds.train.x.std().item() - 1) < 1e-3
    assert ds.denormalize(ds.test.x).min() >= -1e-5
    folder = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}[name]
    assert (metaqnn_cache / "torchvision" / folder / "raw" / "t10k-images-idx3-ubyte").is_file()


def _load_mnist_raw(root: str, cache: str, barrier: Any) -> tuple[int, int]:
    barrier.wait(60)  # every process enters the loader at the same moment
    raw = datasets.DATASETS["mnist"].loader(Path(root), Path(cache), False)
    return len(raw.train_x), int(raw.test_y.sum())


def test_processes_filling_one_fresh_cache_at_once_all_read_mnist(
    shared_data_root: Path, tmp_path: Path
) -> None:
    # design runs started together on a fresh machine share an empty cache, which torchvision
    # extracts in place: one fills it while the others wait (a guard: without the lock this
    # race did not show in two tries here)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if not (shared_data_root / "MNIST").is_dir():
        pytest.skip("no MNIST in the shared data")
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(3, mp_context=context) as pool:
        barrier = manager.Barrier(3)
        jobs = [pool.submit(_load_mnist_raw, str(shared_data_root), str(tmp_path), barrier)
                for _ in range(3)]  # fmt: skip
        results = [job.result(timeout=300) for job in jobs]
    assert len(set(results)) == 1 and results[0][0] == 60000
    assert not list((tmp_path / "torchvision" / "MNIST" / "raw").glob("*.part"))


# --- CIFAR-10 from a JPEG tarball (a tiny fake one) ------------------------------------------


def _fake_cifar_tarball(root: Path) -> None:
    """2 classes x 3 train JPEGs and 2 x 2 test JPEGs, laid out like cifar10-jpeg.tar.gz."""
    gen = torch.Generator().manual_seed(0)
    with tarfile.open(root / datasets.CIFAR10_TARBALL, "w:gz") as archive:
        for split, count in (("train", 3), ("test", 2)):
            for cls, level in (("bird", 40), ("airplane", 200)):
                for i in range(count):
                    noise = torch.randint(0, 10, (32, 32, 3), generator=gen, dtype=torch.uint8)
                    buffer = io.BytesIO()
                    Image.fromarray((noise + level).numpy()).save(buffer, "JPEG", quality=90)
                    jpeg = buffer.getvalue()
                    info = tarfile.TarInfo(f"{split}/{cls}/{i:04d}.jpg")
                    info.size = len(jpeg)
                    archive.addfile(info, io.BytesIO(jpeg))


def test_cifar10_from_jpeg_tarball_is_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, cache = tmp_path / "data", tmp_path / "cache"
    root.mkdir()
    _fake_cifar_tarball(root)
    monkeypatch.setenv("METAQNN_CACHE", str(cache))
    ds = load_dataset("cifar10", root=root, val_size=2)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (4, 2, 4)
    assert ds.train.x.shape[1:] == (3, 32, 32)
    assert ds.test.y.tolist() == [0, 0, 1, 1]  # ImageFolder order: "airplane" < "bird"
    pixels = ds.denormalize(ds.test.x)  # airplanes are bright, birds dark
    assert pixels[:2].mean() > 0.7 and pixels[2:].mean() < 0.3
    assert ds.source == "CIFAR-10 (JPEG q75)"
    assert len(list(cache.glob("cifar10-jpeg-*.pt"))) == 1

    def no_decoding(tarball: Path) -> None:
        raise AssertionError("decoded the tarball again instead of using the cached .pt")

    monkeypatch.setattr(datasets, "_decode_jpeg_tarball", no_decoding)
    again = load_dataset("cifar10", root=root, val_size=2, seed=1)  # a new key: not memoised
    assert torch.equal(again.test.y, ds.test.y)
    assert torch.allclose(again.denormalize(again.test.x), pixels, atol=1e-5)


def test_corrupt_jpeg_tarball_is_a_format_error(tmp_path: Path) -> None:
    (tmp_path / datasets.CIFAR10_TARBALL).write_bytes(b"not a tarball")
    with pytest.raises(DataFormatError, match=datasets.CIFAR10_TARBALL):
        load_dataset("cifar10", root=tmp_path)


# --- errors ---------------------------------------------------------------------------------


def test_unknown_dataset_lists_the_known_names() -> None:
    with pytest.raises(UnknownDatasetError, match="imagenet") as info:
        load_dataset("imagenet")
    assert all(name in str(info.value) for name in dataset_names())


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10", "svhn", "cifar100"])
def test_missing_files_say_where_and_how(name: str, tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(name, root=tmp_path)
    message = str(info.value)
    assert name in message and str(tmp_path.resolve()) in message
    assert "download=True" in message
    assert "\n" not in message


def test_missing_root_defaults_to_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METAQNN_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DatasetNotFoundError, match="nowhere"):
        load_dataset("mnist")


def test_corrupt_gz_file_is_named(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"garbage" * 100))
    with pytest.raises(DataFormatError, match=r"train-images-idx3-ubyte\.gz") as info:
        load_dataset("mnist", root=tmp_path)
    assert isinstance(info.value, MetaQNNError) and "\n" not in str(info.value)


def test_wrong_shape_or_labels_are_format_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake(images: torch.Tensor, labels: torch.Tensor) -> datasets.Loader:
        return lambda root, cache, download: datasets.RawData(
            images, labels, images, labels, "fake", "fake-file.bin"
        )

    spec = datasets.DATASETS["mnist"]
    cases = [
        (torch.zeros(10, 1, 27, 28, dtype=torch.uint8), torch.zeros(10, dtype=torch.int64)),
        (torch.zeros(10, 1, 28, 28, dtype=torch.int32), torch.zeros(10, dtype=torch.int64)),
        (torch.zeros(10, 1, 28, 28, dtype=torch.uint8), torch.zeros(9, dtype=torch.int64)),
        (torch.zeros(10, 1, 28, 28, dtype=torch.uint8), torch.full((10,), 10)),
    ]
    for images, labels in cases:
        bad = dataclasses.replace(spec, loader=fake(images, labels))
        monkeypatch.setitem(datasets.DATASETS, "mnist", bad)
        with pytest.raises(DataFormatError, match=r"fake-file\.bin"):
            load_dataset("mnist", root="/nonexistent-root-for-test")
