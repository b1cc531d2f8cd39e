"""Architectures are checked against size limits before anything is allocated, and the command
line turns a net that is too large, too deep or oddly written into one line of error."""

from __future__ import annotations

import pytest

from envs.layers import Architecture, ArchitectureParseError
from envs.space import PRESETS
from metaqnn.cli.main import main
from metaqnn.cli.options import check_space_size
from metaqnn.core.limits import (
    DEFAULT_LIMITS,
    ArchitectureLimitError,
    ArchitectureLimits,
    active_limits,
    use_limits,
)
from metaqnn.core.nets import architecture_cost, build_model, count_flops, count_parameters
from metaqnn.errors import ConfigError

HUGE_CONV = "[C(99999999999,3,1), SM(10)]"
HUGE_FC = "[FC(99999999999), SM(10)]"
DEEP = "[" + ", ".join(["C(8,3,1)"] * 10_000) + ", SM(10)]"


def _build(text: str, **kw):
    return build_model(Architecture.parse(text), in_channels=1, input_size=8, **kw)


# ------------------------------------------------------------------ the parser
@pytest.mark.parametrize("arg", ["６４", "٦٤", "²", "1" * 19])
def test_only_short_ascii_numbers_parse(arg):
    token = f"C({arg},3,1)"
    with pytest.raises(ArchitectureParseError, match="ASCII digits") as info:
        Architecture.parse(f"[{token}, SM(10)]")
    assert info.value.token == token and token in str(info.value)


# ------------------------------------------------------------------ the limits
def test_build_model_refuses_a_huge_conv_before_allocating():
    with pytest.raises(ArchitectureLimitError, match=r"layer 0 C\(99999999999,3,1\)") as info:
        _build(HUGE_CONV)
    assert info.value.limit == "max_params" and info.value.index == 0
    assert "--max-params" in str(info.value) and "500,000,000" in str(info.value)


def test_build_model_refuses_a_huge_fc_and_a_deep_net():
    with pytest.raises(ArchitectureLimitError, match=r"FC\(99999999999\)"):
        _build(HUGE_FC)
    with pytest.raises(ArchitectureLimitError, match="10,000 layers") as info:
        _build(DEEP)
    assert info.value.limit == "max_depth" and info.value.index == DEFAULT_LIMITS.max_depth


def test_activations_and_flops_are_limited():
    arch = "[C(16,3,1), C(16,3,1), SM(10)]"
    activations = 16 * 64 * 2 + 10
    flops = 2 * 9 * 16 * 64 + 2 * 16 * 9 * 16 * 64 + 2 * 16 * 64 * 10
    cost = architecture_cost(Architecture.parse(arch), in_channels=1, input_size=8)
    assert (cost.depth, cost.activations, cost.flops) == (2, activations, flops)
    assert cost.flops == count_flops(Architecture.parse(arch), in_channels=1, input_size=8)
    net = _build(arch, config=_plain())
    assert cost.params == count_parameters(net)
    for limits, name in (
        (ArchitectureLimits(max_activations=activations - 1), "max_activations"),
        (ArchitectureLimits(max_flops=flops - 1), "max_flops"),
        (ArchitectureLimits(max_params=cost.params - 1), "max_params"),
        (ArchitectureLimits(max_depth=1), "max_depth"),
    ):
        with pytest.raises(ArchitectureLimitError) as info:
            _build(arch, limits=limits)
        assert info.value.limit == name


def _plain():
    from metaqnn.core.nets import NetConfig

    return NetConfig(norm="none", dropout=False)


def test_use_limits_sets_the_limits_of_build_model_for_a_block():
    arch = "[C(8,3,1), C(8,3,1), SM(10)]"
    with use_limits(ArchitectureLimits(max_depth=1)), pytest.raises(ArchitectureLimitError):
        _build(arch)
    assert active_limits() == DEFAULT_LIMITS
    _build(arch)


def test_bad_limits_are_refused():
    with pytest.raises(ConfigError, match="max_params"):
        ArchitectureLimits(max_params=0)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_the_largest_net_of_every_preset_is_within_the_defaults(name):
    check_space_size(PRESETS[name], DEFAULT_LIMITS)


# ------------------------------------------------------------------ the command line
def _one_line_error(capsys, *argv: str) -> str:
    code = main(list(argv))
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("metaqnn: error: "), err
    return lines[0]


@pytest.mark.parametrize(
    ("arch", "named"),
    [(HUGE_CONV, "C(99999999999,3,1)"), (HUGE_FC, "FC(99999999999)"), (DEEP, "--max-depth")],
)
def test_train_refuses_oversized_nets_in_one_line(capsys, tmp_path, arch, named):
    out = tmp_path / "x.pt"  # digits is embedded: the (empty) data root is not read
    line = _one_line_error(
        capsys, "train", arch, "--dataset", "digits", "--epochs", "1", "--out", str(out),
        "--data-root", str(tmp_path), "--no-progress",
    )  # fmt: skip
    assert named in line and "layer" in line
    assert list(tmp_path.iterdir()) == []


def test_train_limit_options_lower_and_raise_the_limits(capsys, tmp_path):
    arch = "[C(8,3,1), C(8,3,1), SM(10)]"
    common = ["--dataset", "digits", "--steps", "1", "--data-root", str(tmp_path / "data"),
              "--no-progress", "--out", str(tmp_path / "x.pt")]  # fmt: skip
    line = _one_line_error(capsys, "train", arch, *common, "--max-depth", "1")
    assert "layer 1 C(8,3,1)" in line and "--max-depth" in line
    with pytest.raises(SystemExit) as info:  # argparse's error, one line too
        main(["train", arch, *common, "--max-params", "1.5"])
    assert info.value.code == 2 and "'1.5' is not a whole number" in capsys.readouterr().err
    deep = "[" + ", ".join(["C(4,3,1)"] * 70) + ", SM(10)]"
    assert main(["train", deep, *common, "--max-depth", "70", "--max-flops", "1e12"]) == 0


def test_validate_refuses_fullwidth_digits_and_checks_the_limits(capsys):
    line = _one_line_error(capsys, "validate", "[C(６４,3,1), SM(10)]")
    assert "C(６４,3,1)" in line
    line = _one_line_error(capsys, "validate", "[C(64,3,1), SM(10)]", "--space", "digits",
                           "--max-flops", "1000")  # fmt: skip
    assert "layer 0 C(64,3,1)" in line and "--max-flops" in line


def test_a_space_for_other_images_is_refused(capsys, tmp_path):
    logdir = tmp_path / "run"
    line = _one_line_error(capsys, "search", "--dataset", "digits", "--space", "mnist",
                           "--reward", "real", "--logdir", str(logdir))  # fmt: skip
    assert "--space mnist" in line and "1x8x8" in line and "digits" in line
    assert not logdir.exists()
    line = _one_line_error(capsys, "train", "[C(64,3,1), SM(10)]", "--dataset", "digits",
                           "--space", "mnist", "--out", str(tmp_path / "x.pt"))  # fmt: skip
    assert "--space mnist" in line


def test_search_refuses_a_space_over_the_limits(capsys, tmp_path):
    logdir = tmp_path / "run"
    line = _one_line_error(capsys, "search", "--dataset", "digits", "--reward", "real",
                           "--max-flops", "1000", "--logdir", str(logdir))  # fmt: skip
    assert "'digits'" in line and "--max-flops" in line
    assert not logdir.exists()
