"""``metaqnn.cli.options``: comma-separated option lists and their errors."""

import pytest

from metaqnn.cli.options import floats, ints, names
from metaqnn.errors import ConfigError


def test_lists_parse_and_skip_empty_items():
    assert ints("1, 2,,3", "--n") == (1, 2, 3)
    assert floats("0.5,1e-3", "--lr") == (0.5, 0.001)
    assert names(" a,b ", {"a": 1, "b": 2}, "thing") == ("a", "b")
    assert names(None, {"a": 1}, "thing") is None


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: ints("1,x", "--n"), "--n: '1,x' is not a comma-separated list of integers"),
        (lambda: ints(" , ", "--n"), "--n: no values in ' , '"),
        (lambda: floats("1,nope", "--lr"), "--lr: '1,nope' is not a comma-separated list of"),
        (lambda: floats("", "--lr"), "--lr: no values in ''"),
        (lambda: names("a,c", {"a": 1, "b": 2}, "thing"), "unknown thing 'c'; choose from a, b"),
    ],
)
def test_bad_lists_name_the_option_and_value(call, message):
    with pytest.raises(ConfigError) as info:
        call()
    assert message in str(info.value)
