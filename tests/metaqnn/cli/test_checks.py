"""The numeric option checks run before every command, argparse's errors as one line, and a
closed pipe that ends the command quietly."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from metaqnn.cli.checks import RULES, check_numbers
from metaqnn.cli.main import build_parser
from metaqnn.errors import ConfigError


@pytest.mark.parametrize(
    ("dest", "value", "words"),
    [
        ("grad_clip", -1.0, "--grad-clip -1.0: must be a positive number"),
        ("outer_lr", float("nan"), "--outer-lr nan: must be a finite number"),
        ("seeds", 0, "--seeds 0: must be an integer of at least 1"),
        ("seed", -1, "--seed -1: must be a number of at least 0"),
        ("confidence", 1.0, "--confidence 1.0: must be a number strictly between 0 and 1"),
        ("an_unruled_float", float("inf"), "--an-unruled-float inf: must be a finite number"),
    ],
)
def test_a_value_that_breaks_its_rule_is_named(dest, value, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        check_numbers(argparse.Namespace(**{dest: value}))


def test_unset_options_flags_and_strings_are_not_checked():
    check_numbers(argparse.Namespace(seeds=None, no_progress=True, budget="2h", lr=0.1))


def test_every_default_of_every_command_passes_its_rule():
    """The rules must not refuse a command run with its defaults (a rule on the wrong option
    would break a whole command)."""

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
            elif isinstance(action.default, int | float) and not isinstance(action.default, bool):
                rule = RULES.get(action.dest)
                if rule is not None:
                    assert rule.holds(action.default), (path, action.dest, action.default)

    walk(build_parser(), "metaqnn")


def test_a_closed_pipe_ends_quietly():
    """``metaqnn sample -n 100000 | head -1``: no BrokenPipeError traceback."""
    code = "from metaqnn.cli import main; import sys; sys.exit(main())"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "sample", "-n", "100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == ""


def test_zero_where_zero_means_something_is_accepted():
    """``--score-size 0`` scores every validation image, ``--val-size 0`` holds none out."""
    check_numbers(argparse.Namespace(score_size=0, val_size=0, seed=0, eval_archs=0))
    with pytest.raises(ConfigError, match="--val-size -1"):
        check_numbers(argparse.Namespace(val_size=-1))
