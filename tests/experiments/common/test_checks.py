"""The shared ``Config`` checks: what they let through and the one-line errors they raise."""

from dataclasses import dataclass

import pytest

from experiments.common.checks import at_least, distinct_seeds, known_choices
from metaqnn.errors import ConfigError

CHOICES = {"qlearning": 1, "random": 2}


def test_known_choices_passes_known_values_and_names_the_unknown_ones():
    known_choices("agents", ("random", "qlearning"), CHOICES)
    known_choices("agents", (), CHOICES, allow_empty=True)
    with pytest.raises(ConfigError) as error:
        known_choices("agents", ("qlearning", "sac", "foo"), CHOICES)
    message = str(error.value)
    assert message == (
        "agents=['qlearning', 'sac', 'foo']: unknown ['sac', 'foo']; choose from qlearning, random"
    )
    assert isinstance(error.value, ValueError) and "\n" not in message


def test_known_choices_wants_at_least_one_unless_allowed_empty():
    with pytest.raises(ConfigError, match=r"^agents=\[\]: give at least one; choose from"):
        known_choices("agents", (), CHOICES)
    with pytest.raises(ConfigError, match=r"unknown \['sac'\]"):
        known_choices("agents", ("sac",), CHOICES, allow_empty=True)


@pytest.mark.parametrize("seeds", [(0,), (3, 1, 2)])
def test_distinct_seeds_pass(seeds):
    distinct_seeds(seeds)


@pytest.mark.parametrize(
    ("seeds", "name", "message"),
    [
        ((1, 1), "seeds", "seeds=[1, 1] must be distinct and not empty"),
        ((0, 2, 0), "gtn_seeds", "gtn_seeds=[0, 2, 0] must be distinct and not empty"),
        ((), "seeds", "seeds=[] must be distinct and not empty"),
    ],
)
def test_repeated_or_no_seeds_are_named(seeds, name, message):
    with pytest.raises(ConfigError) as error:
        distinct_seeds(seeds, name)
    assert str(error.value) == message


@dataclass(frozen=True)
class _Config:
    window: int = 1
    top: int = 3
    test_size: int = 0


def test_at_least_passes_values_at_the_bound():
    at_least(_Config(), ("window", "top"))
    at_least(_Config(), ("test_size",), least=0)
    at_least(_Config(), "top", least=3)  # a single name is not taken letter by letter


@pytest.mark.parametrize(
    ("config", "names", "least", "message"),
    [
        (_Config(window=0), ("window", "top"), 1, "window=0 must be positive"),
        (_Config(top=-2), ("window", "top"), 1, "top=-2 must be positive"),
        (_Config(window=0, top=0), ("top", "window"), 1, "top=0 must be positive"),
        (_Config(test_size=-5), ("test_size",), 0, "test_size=-5 must be >= 0"),
        (_Config(), ("window", "top"), 3, "window=1 must be >= 3"),
    ],
)
def test_at_least_names_the_first_field_below_the_bound(config, names, least, message):
    with pytest.raises(ConfigError) as error:
        at_least(config, names, least)
    assert str(error.value) == message
