import dataclasses

import numpy as np
import pytest

from envs.layers import (
    Architecture,
    ArchitectureError,
    ArchitectureParseError,
    Conv,
    FullyConnected,
    GlobalAvgPool,
    Pool,
    Softmax,
)
from envs.space import PRESETS

EXAMPLE = "[C(64,3,1), P(2,2), FC(512), SM(10)]"


def test_example_parses_to_layers():
    arch = Architecture.parse(EXAMPLE)
    assert arch.layers == (Conv(64, 3, 1), Pool(2, 2), FullyConnected(512), Softmax(10))
    assert str(arch) == EXAMPLE
    assert arch.num_classes == 10
    assert arch.hidden == arch.layers[:-1]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_round_trip_of_random_architectures(preset):
    space = PRESETS[preset]
    rng = np.random.default_rng(123)
    for _ in range(200):
        arch = space.sample(rng)
        text = str(arch)
        again = Architecture.parse(text)
        assert again == arch
        assert hash(again) == hash(arch)
        assert str(again) == text


def test_whitespace_and_default_stride_are_accepted():
    arch = Architecture.parse("  [ C( 64 , 3 ) ,P(2,2),GAP ,SM(10) ]  ")
    assert str(arch) == "[C(64,3,1), P(2,2), GAP, SM(10)]"


def test_architectures_are_immutable_and_hashable():
    arch = Architecture.parse(EXAMPLE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        arch.layers = ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        arch.layers[0].filters = 3
    assert len({arch, Architecture.parse(EXAMPLE), Architecture.parse("[SM(10)]")}) == 2
    assert Architecture([Conv(64, 3, 1), Softmax(10)]).layers == (Conv(64, 3, 1), Softmax(10))


@pytest.mark.parametrize(
    ("text", "token", "position"),
    [
        ("[C(64,3,1), X(2,2), SM(10)]", "X(2,2)", 12),
        ("[C(64,3,1,7), SM(10)]", "C(64,3,1,7)", 1),
        ("[C(64,3,1), P(2), SM(10)]", "P(2)", 12),
        ("[C(64,0,1), SM(10)]", "C(64,0,1)", 1),
        ("[C(64,-3,1), SM(10)]", "C(64,-3,1)", 1),
        ("[C(64,3,1),  FC, SM(10)]", "FC", 13),
        ("[GAP(1), SM(10)]", "GAP(1)", 1),
        ("[C(64,3,1),, SM(10)]", "", 11),
        ("[C(64,3,1) P(2,2), SM(10)]", "C(64,3,1) P(2,2)", 1),
        ("C(64,3,1), SM(10)", "C(64,3,1), SM(10)", 0),
    ],
)
def test_parse_errors_name_token_and_position(text, token, position):
    with pytest.raises(ArchitectureParseError) as info:
        Architecture.parse(text)
    assert info.value.token == token
    assert info.value.position == position
    assert f"position {position}" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[C(64,3,1), P(2,2)]", "must end with SM"),
        ("[SM(10), C(64,3,1), SM(10)]", "not last"),
        ("[]", "empty token"),
    ],
)
def test_structural_errors(text, match):
    with pytest.raises(ArchitectureError, match=match):
        Architecture.parse(text)


def test_non_layer_is_rejected():
    with pytest.raises(ArchitectureError, match="not a layer spec"):
        Architecture(("C(64,3,1)", Softmax(10)))


def test_gap_has_no_arguments_and_formats_bare():
    assert str(Architecture((GlobalAvgPool(), Softmax(3)))) == "[GAP, SM(3)]"
