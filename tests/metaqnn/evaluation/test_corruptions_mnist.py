"""The MNIST-C levels against a real MNIST model: accuracy falls with severity for every
corruption.

Run as a script to print the accuracy tables of experiments/RESULTS.md ("Corruption levels
for 28x28 digits"), CIFAR-10-C's levels (before) and MNIST-C's (after), on MNIST test images:
``METAQNN_DATA=/work/shared/data python -m tests.metaqnn.evaluation.test_corruptions_mnist``.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from pathlib import Path

import pytest
import torch

from envs.layers import Architecture
from metaqnn.core.data import Split, load_dataset
from metaqnn.core.training import TrainConfig, train_architecture
from metaqnn.errors import DatasetNotFoundError
from metaqnn.evaluation.corruption_levels import CIFAR, MNIST
from metaqnn.evaluation.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from metaqnn.evaluation.pixels import PixelModel, accuracy

#: A small MNIST CNN, the README's reference net.
ARCH = "[C(32,3,1), P(2,2), C(64,3,1), P(2,2), FC(128), SM(10)]"
TRAIN_IMAGES = 5000
BATCH_SIZE = 32
TIE = 0.005  # accuracy may rise by this much from one severity to the next (ties, noise)


def train_mnist(
    root: Path, *, train_images: int = TRAIN_IMAGES, batch_size: int = BATCH_SIZE
) -> tuple[PixelModel, Split]:
    """:data:`ARCH` trained for one epoch (seed 0) on the first ``train_images`` MNIST training
    images, as a pixel model, and the test split in [0, 1] pixels."""
    data = load_dataset("mnist", root=root, val_size=0)
    x, y = data.train.x, data.train.y
    train, val = Split(x[:train_images], y[:train_images]), Split(x[-500:], y[-500:])
    config = TrainConfig(epochs=1, batch_size=batch_size, lr=3e-3, max_restarts=0, seed=0)
    with torch.random.fork_rng(devices=[]):
        result = train_architecture(Architecture.parse(ARCH), train, val, config)
    model = PixelModel(result.model, data.mean, data.std).eval()
    return model, Split(data.denormalize(data.test.x), data.test.y)


def accuracy_table(
    model: PixelModel, pixels: torch.Tensor, labels: torch.Tensor, kind: str
) -> dict[str, list[float]]:
    """Corruption -> accuracy on clean images then at severities 1..5, with ``kind``'s levels."""
    clean = accuracy(model, pixels, labels)
    return {
        name: [clean] + [accuracy(model, corrupt(pixels, name, s, kind=kind), labels)
                         for s in SEVERITIES]
        for name in CORRUPTIONS
    }  # fmt: skip


#: The corruptions whose MNIST levels are this project's calibration, not MNIST-C's.
OWN_LEVELS = (
    "shot_noise",
    "gaussian_blur",
    "defocus_blur",
    "contrast",
    "pixelate",
    "elastic",
    "fog",
)


@pytest.mark.slow
def test_mnist_accuracy_falls_with_severity_for_every_corruption(shared_data_root):
    """On 500 MNIST test images: accuracy never rises (beyond ``TIE``) from clean through
    severities 1..5 and is lower at 5 than clean for every corruption; the project's own
    levels fall at every step and stay above chance at 5."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, test = train_mnist(shared_data_root)
        table = accuracy_table(model, test.x[:500], test.y[:500], MNIST)
    except DatasetNotFoundError as err:
        pytest.skip(f"MNIST not found: {err}")
    finally:
        torch.set_num_threads(threads)
    assert table["contrast"][0] > 0.9, "the model did not learn"
    for name, accs in table.items():
        for severity, (before, after) in enumerate(itertools.pairwise(accs), 1):
            assert after <= before + TIE, f"{name} rises at severity {severity}: {accs}"
            if name in OWN_LEVELS:
                assert after < before, f"{name} does not fall at severity {severity}: {accs}"
        assert accs[-1] < accs[0], f"{name} at severity 5 is not harder than clean: {accs}"
        if name in OWN_LEVELS:
            assert accs[-1] > 0.2, f"{name} at severity 5 is at chance: {accs}"


def _markdown(table: dict[str, list[float]]) -> str:
    rows = ["| corruption | clean | 1 | 2 | 3 | 4 | 5 |", "|---|---|---|---|---|---|---|"]
    rows += [f"| {name} | " + " | ".join(f"{100 * a:.1f}" for a in accs) + " |"
             for name, accs in table.items()]  # fmt: skip
    return "\n".join(rows)


def main(images: int = 2000) -> None:
    """Print the before (CIFAR-10-C levels) and after (MNIST-C levels) accuracy tables."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    model, test = train_mnist(Path(os.environ["METAQNN_DATA"]))
    x, y = test.x[:images], test.y[:images]
    print(f"trained in {time.perf_counter() - start:.1f} s; {images} test images")
    for kind in (CIFAR, MNIST):
        start = time.perf_counter()
        table = accuracy_table(model, x, y, kind)
        print(f"\n{kind} levels ({time.perf_counter() - start:.1f} s)\n\n{_markdown(table)}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
