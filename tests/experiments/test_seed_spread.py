"""The seed-spread experiment's config checks and its interval."""

from __future__ import annotations

import pytest

from experiments.seed_spread import Config, _interval
from metaqnn.errors import ConfigError


def test_a_bad_architecture_or_recipe_is_a_one_line_error_naming_it():
    with pytest.raises(ConfigError, match="at least one"):
        Config(architectures={})
    with pytest.raises(ConfigError, match=r"architectures\.bad"):
        Config(architectures={"bad": "[C(3,3,1)"})
    with pytest.raises(ConfigError, match="unknown recipe 'fast'"):
        Config(architectures={"ok": "[SM(10)]"}, recipe="fast")


def test_the_interval_is_the_mean_plus_minus_two_standard_errors():
    low, high = _interval([1.0, 2.0, 3.0, 2.0])  # mean 2, sd 0.8165, se 0.4082
    assert (low + high) / 2 == pytest.approx(2.0)
    assert high - low == pytest.approx(2 * 1.96 * 0.8165 / 2, rel=1e-3)
    assert _interval([1.5]) == (1.5, 1.5)
