"""Architectures the experiments score: the space sampler's first distinct draws, families."""

from __future__ import annotations

import pytest

from envs.layers import Architecture
from envs.space import get_space
from experiments.common.architectures import families, sample_architectures
from metaqnn.errors import ConfigError


def test_sample_architectures_distinct_seeded_and_in_draw_order():
    space = get_space("mnist").scale_widths(16)
    archs = sample_architectures(space, 12, seed=5)
    assert len(archs) == 12 and len({str(a) for a in archs}) == 12
    assert [str(a) for a in archs] == [str(a) for a in sample_architectures(space, 12, seed=5)]
    assert [str(a) for a in sample_architectures(space, 5, seed=5)] == [str(a) for a in archs[:5]]
    assert [str(a) for a in archs] != [str(a) for a in sample_architectures(space, 12, seed=6)]


def test_sample_architectures_fails_clearly_when_the_space_is_too_small():
    tiny = get_space("mnist").replace(max_depth=1, conv_filters=(4,), conv_kernels=(3,))
    with pytest.raises(ConfigError, match=r"only \d+ distinct architectures, not 50"):
        sample_architectures(tiny, 50, seed=0)


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        ("[GAP, SM(10)]", ["GAP", "shallow"]),
        ("[C(4,3,1), P(2,2), C(8,3,1), P(2,2), FC(16), SM(10)]", ["several pools", "FC"]),
        ("[C(4,3,1), C(4,3,1), C(4,3,1), C(4,3,1), C(4,3,1), C(4,3,1), SM(10)]", ["deep"]),
        ("[C(4,3,1), C(4,3,1), P(2,2), SM(10)]", ["other"]),
    ],
)
def test_families(text, tags):
    assert families(Architecture.parse(text)) == tags
