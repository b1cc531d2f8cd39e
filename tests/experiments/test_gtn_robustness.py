"""The gtn_robustness experiment: the study's perturbations, the measured curves and the
config checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from experiments.gtn_robustness import (
    PERTURBATIONS,
    TRAININGS,
    Config,
    _fgsm,
    _lbfgs,
    measure,
)
from experiments.harness import CONFIG_DIR, load_config
from metaqnn.errors import ConfigError
from metaqnn.teacher.run import TeacherRun


def _config(**changes):
    values = dict(teacher="", teacher_outer_steps=1, teacher_settings=TeacherRun(), attack_steps=5,
                  images=32, attack_images=16, noise_betas=(0.0, 0.5), blur_betas=(0.0, 2.0),
                  fgsm_betas=(0.0, 0.05), lbfgs_betas=(1.0, 4.0))  # fmt: skip
    values.update(changes)
    return Config(**values)


@pytest.fixture(scope="module")
def model_and_data():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))  # a pixel-space linear classifier
    pixels = torch.rand(32, 1, 8, 8)
    with torch.no_grad():
        labels = model(pixels).argmax(1)  # the model is right on every clean image
    return model, pixels, labels


def test_fgsm_is_thirty_small_signed_steps_in_pixel_range(model_and_data):
    model, x, y = model_and_data
    config = _config(attack_steps=30)
    assert torch.equal(_fgsm(model, x, y, 0.0, config), x)
    adv = _fgsm(model, x, y, 0.01, config)
    assert adv.min() >= 0 and adv.max() <= 1
    assert (adv - x).abs().max() <= 30 * 0.01 + 1e-6
    assert (adv - x).abs().max() > 0.01 + 1e-6  # more than one step: it iterates
    with torch.no_grad():
        assert (model(adv).argmax(1) == y).float().mean() < 1.0


def test_lbfgs_penalty_keeps_weak_attacks_close(model_and_data):
    model, x, y = model_and_data
    config = _config(attack_steps=10)
    strong = _lbfgs(model, x, y, 100.0, config)
    weak = _lbfgs(model, x, y, 0.6, config)
    assert strong.min() >= 0 and strong.max() <= 1
    assert (weak - x).norm() < (strong - x).norm()


def test_measure_returns_a_curve_per_perturbation(model_and_data):
    model, x, y = model_and_data
    config = _config()
    curves = measure(model, x, y, config)
    assert set(curves) == {*PERTURBATIONS, "clean", "clean_attacked"}
    for name, spec in PERTURBATIONS.items():
        assert len(curves[name]) == len(getattr(config, spec.betas))
    assert curves["clean"] == [1.0] and curves["clean_attacked"] == [1.0]
    assert curves["gaussian_noise"][0] == 1.0 and curves["gaussian_blur"][0] == 1.0
    assert curves["fgsm"][0] == 1.0 and curves["fgsm"][1] < 1.0
    assert measure(model, x, y, config) == curves  # seeded noise: the same numbers again


def test_registries_cover_the_study():
    assert set(TRAININGS) == {"gtn_full", "gtn_early", "real"}
    assert set(PERTURBATIONS) == {"gaussian_noise", "gaussian_blur", "fgsm", "lbfgs"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"learner": "vgg"}, "learner 'vgg'"),
        ({"lbfgs_betas": (0.0, 1.0)}, "lbfgs_betas=.*beta > 0"),
        ({"noise_betas": (-0.1,)}, "noise_betas"),
        ({"seeds": 0}, "seeds=0"),
        ({"lbfgs_step": 0.0}, "lbfgs_step=0.0"),
    ],
)
def test_config_checks_name_the_bad_values(changes, message):
    with pytest.raises(ConfigError, match=message):
        _config(**changes)


def test_shipped_config_loads_in_both_modes():
    full = load_config(Config, CONFIG_DIR / "gtn_robustness.toml")
    quick = load_config(Config, CONFIG_DIR / "gtn_robustness.toml", quick=True)
    assert full.attack_steps == 30 and full.teacher
    assert quick.teacher == "" and quick.seeds < full.seeds
    assert full.teacher_settings.learner == "paper" and quick.teacher_settings.inner_steps == 12
