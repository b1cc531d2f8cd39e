"""Every option of every (sub)command has a help text, and ``--help`` shows the defaults."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from metaqnn.cli.main import build_parser, main


def _parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """``parser`` and, recursively, every subcommand's parser, with the command path."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


PARSERS = list(_parsers(build_parser()))


def test_walk_reaches_the_nested_subcommands():
    paths = {path for path, _ in PARSERS}
    for path in [("gtn", "train"), ("gtn", "export"), ("evaluate", "correlation"),
                 ("lopt", "eval"), ("train",), ("datasets",)]:  # fmt: skip
        assert path in paths


@pytest.mark.parametrize(
    "path, parser", PARSERS, ids=[" ".join(p) or "metaqnn" for p, _ in PARSERS]
)
def test_every_option_has_help(path, parser):
    missing = [
        action.option_strings[0] if action.option_strings else action.dest
        for action in parser._actions
        if not isinstance(action, (argparse._HelpAction, argparse._VersionAction))
        and not (action.help or "").strip()
    ]
    assert not missing, f"metaqnn {' '.join(path)}: no help for {missing}"


@pytest.mark.parametrize(
    "path, parser", PARSERS, ids=[" ".join(p) or "metaqnn" for p, _ in PARSERS]
)
def test_every_parser_shows_defaults(path, parser):
    assert issubclass(parser.formatter_class, argparse.ArgumentDefaultsHelpFormatter)
    text = parser.format_help()  # every help string formats (no stray %)
    assert "(default: None)" not in text
    assert "(default: False)" not in text


def test_gtn_train_help_shows_defaults(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["gtn", "train", "--help"])
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    options = out[out.index("options:") :]
    inner = options[options.index("--inner-steps INNER_STEPS") : options.index("--inner-batch")]
    assert inner.rstrip().endswith("(default: 32)")
    assert "(default: 1.0)" in out  # --grad-clip
    assert "--soft-labels learn soft labels" in out  # a flag: no "(default: False)"


def test_limits_show_their_defaults_in_scientific_notation(capsys):
    with pytest.raises(SystemExit):
        main(["validate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "most parameters (default: 5e+08)" in out
