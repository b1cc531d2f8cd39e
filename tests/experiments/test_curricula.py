"""The curriculum ablation's config and the fairness of its budget (the run itself is covered by
the quick-mode smoke test)."""

from __future__ import annotations

import dataclasses

import pytest

from experiments.curricula import PAPER_ORDER, Config, teacher_settings
from experiments.harness import CONFIG_DIR, load_config
from gtn.curriculum import CURRICULA
from metaqnn.errors import ConfigError


@pytest.mark.parametrize("quick", [False, True])
def test_config_file_loads_and_names_every_curriculum(quick):
    config = load_config(Config, CONFIG_DIR / "curricula.toml", quick=quick)
    assert set(config.curricula) == set(CURRICULA) == set(PAPER_ORDER)
    assert max(config.steps) <= config.inner_steps


def test_every_curriculum_gets_the_same_budget():
    config = Config()
    settings = {c: teacher_settings(config, c) for c in config.curricula}
    for c, s in settings.items():
        assert s.curriculum == c
        assert dataclasses.replace(s, curriculum="full") == settings["full"]
    assert settings["none"].outer_lr == config.outer_lr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ('curricula=["full", "backwards"]', "curricula=\\['full', 'backwards'\\]"),
        ("steps=[0, 4]", "counts must be >= 1"),
        ("outer_steps=0", "outer_steps=0"),
    ],
)
def test_bad_config_is_a_clear_error(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(Config, CONFIG_DIR / "curricula.toml", overrides=[override])
