import json
import math

import pytest
import torch
from torch import nn

from metaqnn.errors import ConfigError
from metaqnn.evaluation.pixels import accuracy
from metaqnn.evaluation.report import (
    markdown_table,
    plot_robustness,
    robustness_markdown,
    write_scalars,
)
from metaqnn.evaluation.robustness import RobustnessConfig, destruction_rate, evaluate_robustness


class _Brightness(nn.Module):
    """Class 1 when an image's mean pixel is above 0.5, else class 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3))  # (N,)
        return torch.stack([0.5 - m, m - 0.5], dim=1)  # (N, 2)


def test_destruction_rate_known_answer():
    clean = torch.full((4, 1, 4, 4), 0.8)  # all class 1, all right
    adversarial = torch.tensor([0.3, 0.3, 0.05, 0.9]).view(4, 1, 1, 1).expand(4, 1, 4, 4)
    labels = torch.ones(4, dtype=torch.int64)
    # Fooled: the first three. Brightening by 0.4 restores 0.3 -> 0.7 but not 0.05 -> 0.45.
    rate, fooled = destruction_rate(_Brightness(), clean, adversarial, labels,
                                    lambda x: (x + 0.4).clamp(0, 1))  # fmt: skip
    assert fooled == 3 and rate == pytest.approx(2 / 3)
    rate, fooled = destruction_rate(_Brightness(), clean, clean, labels, lambda x: x)
    assert fooled == 0 and math.isnan(rate)


SMALL = RobustnessConfig(
    noise_strengths=(0.0, 0.3), blur_strengths=(0.0, 1.0), attacks=("fgsm", "bim"),
    epsilons=(8 / 255, 32 / 255), corruptions=("gaussian_noise", "rotate"),
    destruction_attacks=("fgsm", "bim", "ll"), destruction_epsilon=32 / 255,
    destruction_transforms=("gaussian_blur", "jpeg"), attack_images=60, batch_size=50, examples=4,
)  # fmt: skip


@pytest.fixture(scope="module")
def report(trained):
    return evaluate_robustness(trained.model, trained.pixels[:120], trained.labels[:120], SMALL)


def test_report_structure(report, trained):
    clean = accuracy(trained.model, trained.pixels[:120], trained.labels[:120])
    assert report.n_images == 120 and report.n_attack_images == 60
    assert report.clean_accuracy == pytest.approx(clean)
    assert report.noise.accuracies[0] == pytest.approx(clean)
    assert report.blur.accuracies[0] == pytest.approx(clean)
    assert set(report.attacks) == {"fgsm", "bim"}
    clean_attacked = accuracy(trained.model, trained.pixels[:60], trained.labels[:60])
    for curve in report.attacks.values():
        assert curve.strengths == (0.0, 8 / 255, 32 / 255)
        assert curve.accuracies[0] == pytest.approx(clean_attacked)
        assert curve.accuracies[-1] < curve.accuracies[0]
    assert report.attacks["bim"].accuracies[-1] <= report.attacks["fgsm"].accuracies[-1]
    assert set(report.corruptions) == {"gaussian_noise", "rotate"}
    assert all(len(c.accuracies) == 5 for c in report.corruptions.values())
    for d in report.destruction.values():
        for rates in d.rates.values():
            assert all(math.isnan(r) or 0 <= r <= 1 for r in rates)
    assert report.examples["clean"].shape == (4, 1, 28, 28)
    assert {"attack/fgsm", "attack/bim", "attack/ll", "corruption/rotate"} <= set(report.examples)
    json.dumps(report.to_dict())  # plain values


def test_report_is_deterministic(report, trained):
    again = evaluate_robustness(trained.model, trained.pixels[:120], trained.labels[:120], SMALL)
    assert again.to_dict()["corruptions"] == report.to_dict()["corruptions"]
    assert again.attacks == report.attacks


def test_report_leaves_the_model_untouched(trained):
    before = {k: v.clone() for k, v in trained.model.state_dict().items()}
    evaluate_robustness(trained.model, trained.pixels[:20], trained.labels[:20], SMALL)
    assert not trained.model.training
    assert all(torch.equal(v, before[k]) for k, v in trained.model.state_dict().items())


def test_markdown_figures_and_scalars(report, tmp_path):
    text = robustness_markdown(report)
    for section in ("Additive Gaussian noise", "Attacks", "Corruptions", "Destruction rates",
                    "basic iterative", "| **mean**"):  # fmt: skip
        assert section in text
    files = plot_robustness(report, tmp_path / "fig")
    assert {f.name for f in files} == {"accuracy_curves.png", "corruptions.png",
                                       "destruction_rates.png", "adversarial_examples.png",
                                       "corrupted_examples.png"}  # fmt: skip
    assert all(f.stat().st_size > 1000 for f in files)
    write_scalars(report, tmp_path / "tb")
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_markdown_table():
    assert markdown_table(["a", "bb"], [[1, 2.5]]).splitlines() == [
        "| a | bb  |", "|---|-----|", "| 1 | 2.5 |"
    ]  # fmt: skip


@pytest.mark.parametrize(("field", "value", "named"), [
    ("attacks", ("fgsm", "cw"), "'cw'"), ("corruptions", ("snow",), "'snow'"),
    ("epsilons", (0.1, -0.2), "-0.2"), ("destruction_epsilon", 3.0, "3.0"),
    ("destruction_epsilon", 0.0, "destruction_epsilon=0"),
    ("noise_strengths", (-1.0,), "noise"), ("attack_images", 0, "attack_images"),
])  # fmt: skip
def test_bad_config_names_the_value(field, value, named):
    with pytest.raises(ConfigError, match=named):
        RobustnessConfig(**{field: value})


def test_pixels_outside_unit_range_are_refused(trained):
    with pytest.raises(ConfigError, match="pixels"):
        evaluate_robustness(trained.model, trained.pixels[:4] - 0.5, trained.labels[:4], SMALL)
