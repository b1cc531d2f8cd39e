"""The robustness report says how many images a destruction rate comes from, and its
corruption figure never draws two corruptions alike."""

from __future__ import annotations

import math

import pytest
import torch

from metaqnn.evaluation.corruptions import CORRUPTIONS
from metaqnn.evaluation.report import plot_robustness, robustness_markdown
from metaqnn.evaluation.robustness import RobustnessConfig, evaluate_robustness


@pytest.fixture(scope="module")
def report(trained):
    config = RobustnessConfig(
        noise_strengths=(0.0,), blur_strengths=(1.0,), attacks=("fgsm",),
        epsilons=(16 / 255,), corruptions=tuple(CORRUPTIONS), destruction_attacks=("fgsm",),
        destruction_epsilon=16 / 255, destruction_transforms=("gaussian_noise",), batch_size=50,
    )  # fmt: skip
    return evaluate_robustness(trained.model, trained.pixels[:40], trained.labels[:40], config)


def test_destruction_rates_carry_their_image_count(report):
    n = report.destruction["fgsm"].fooled
    text = robustness_markdown(report)
    assert f"(n = {n})" in text
    assert ("these rates are rough" in text) == (n < 30)


def test_every_corruption_line_looks_different(report, tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    seen: list[tuple] = []
    close = plt.close

    def record(fig=None):
        if fig is not None and getattr(fig, "axes", None):
            lines = fig.axes[0].get_lines()
            if len(lines) == len(report.corruptions):
                seen.extend((line.get_color(), line.get_linestyle()) for line in lines)
        close(fig)

    monkeypatch.setattr(plt, "close", record)
    plot_robustness(report, tmp_path)
    assert len(report.corruptions) > 10  # more than the default 10-colour cycle
    assert len(seen) == len(report.corruptions)
    assert len(set(map(str, seen))) == len(seen)


def test_a_severity_that_cannot_act_on_the_image_size_is_reported_as_such():
    """On 8x8 images, Gaussian blur of severity 1 (sigma 0.4 px at 32 px, 0.1 px here) leaves
    every pixel as it was: n/a with a note, not a flat line at clean accuracy."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    pixels, labels = torch.rand(40, 1, 8, 8), torch.randint(0, 10, (40,))
    config = RobustnessConfig(
        noise_strengths=(0.0,), blur_strengths=(1.0,), attacks=(), epsilons=(),
        corruptions=("gaussian_blur", "gaussian_noise"), destruction_attacks=(),
        destruction_transforms=(), batch_size=50,
    )  # fmt: skip
    report = evaluate_robustness(model, pixels, labels, config)
    blur = report.corruptions["gaussian_blur"].accuracies
    assert math.isnan(blur[0])
    assert not any(map(math.isnan, report.corruptions["gaussian_noise"].accuracies))
    text = robustness_markdown(report)
    assert "leaves images of this size unchanged (gaussian_blur 1" in text
    assert not math.isnan(report.mean_corruption_accuracy)
