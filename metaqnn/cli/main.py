"""The ``metaqnn`` command line. Each subcommand is an entry of :data:`COMMANDS`, implemented in
a module of its own in this package; the options they share are in
:mod:`metaqnn.cli.options`.

Every error a user can cause (a malformed architecture, a broken rule, an unknown or missing
dataset, a corrupt checkpoint, a bad option value) ends the program with one line on stderr
and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from envs.layers import ArchitectureError
from metaqnn.cli.checks import check_numbers
from metaqnn.cli.options import EXIT_USER_ERROR, DefaultsHelpFormatter
from metaqnn.errors import MetaQNNError
from metaqnn.runinfo import package_version


@dataclass(frozen=True)
class Command:
    """A subcommand: its help, and the module (of this package) that implements it.

    The module has ``configure_<name>(parser)`` and ``run_<name>(args) -> int`` (``name`` is
    ``function`` when given, else the command's name). It is imported only when the command
    is used, so that light commands stay light.
    """

    help: str
    module: str
    function: str | None = None

    def _module(self):
        return importlib.import_module(f"metaqnn.cli.{self.module}")

    def configure(self, name: str) -> Callable[[argparse.ArgumentParser], None]:
        """The function that adds this command's options to its parser."""
        return getattr(self._module(), f"configure_{self.function or name}")

    def runner(self, name: str) -> Callable[[argparse.Namespace], int]:
        """The function that runs this command."""
        return getattr(self._module(), f"run_{self.function or name}")


#: The subcommands, in help order.
COMMANDS: dict[str, Command] = {
    "demo": Command(
        "the main job on a small budget: meta-train a GTN teacher, search with it, retrain "
        "the best designs and report",
        "demo",
    ),
    "design": Command(
        "design a CNN within a wall-clock budget: GTN teacher, Q-learning search, finalists "
        "and hand-designed baselines trained the same way, winner, report (resumable)",
        "design",
    ),
    "train": Command("train one architecture on real data, save a checkpoint", "train"),
    "search": Command(
        "MetaQNN search: Q-learning over the space, GTN or real-data rewards (resumable)",
        "search",
    ),
    "report": Command("a search's top models, Figure 3, retraining of the top K", "search"),
    "evaluate": Command("evaluate a checkpoint", "train"),
    "export": Command(
        "write a checkpoint as a TorchScript (or ONNX) model that takes [0, 1] pixels", "export"
    ),
    "gtn": Command("Generative Teaching Networks: train, sample, eval", "gtn"),
    "bench": Command(
        "a tabular benchmark of a search space: build (resumable), export, show", "bench"
    ),
    "lopt": Command("learned optimizer for robustness (Metz et al. 2019): train, eval", "lopt"),
    "validate": Command("check an architecture against a search space", "space"),
    "sample": Command("print random valid architectures of a search space", "space"),
    "space": Command("describe a search space: actions, states, rules", "space"),
    "datasets": Command("list the datasets and whether their files are here", "space"),
}


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (``metaqnn: error: ...``, with
    the ``--help`` to read) and exit status 2, like every other error of the command line.
    Its help shows each option's default (:class:`~metaqnn.cli.options.DefaultsHelpFormatter`),
    and so do its subcommands' parsers, which are of this class too."""

    def __init__(self, *args, formatter_class=DefaultsHelpFormatter, **kwargs) -> None:
        super().__init__(*args, formatter_class=formatter_class, **kwargs)

    def error(self, message: str) -> NoReturn:
        message = " ".join(message.split())
        self.exit(EXIT_USER_ERROR, f"metaqnn: error: {message} (see: {self.prog} --help)\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with every subcommand of :data:`COMMANDS`.

    With ``only``, just that subcommand's options are added (the others are listed by name
    and help), so ``metaqnn --version`` or ``metaqnn validate ...`` never import the modules,
    and torch, that the heavy commands need.
    """
    parser = OneLineParser(
        prog="metaqnn", description="CNN architecture search with MetaQNN and GTN rewards."
    )
    parser.add_argument("--version", action="version", version=f"metaqnn {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="one of:")
    for name, command in COMMANDS.items():
        p = sub.add_parser(
            name, help=command.help, description=command.help,
            formatter_class=DefaultsHelpFormatter,
        )  # fmt: skip
        if only is None or name == only:
            command.configure(name)(p)
    return parser


def given_options(parser: argparse.ArgumentParser, command: str, argv: Sequence[str]) -> frozenset:
    """The destinations of the options written on the command line (``--epochs 3`` or
    ``--epochs=3``), so that a resume can tell an option given from its default. Nested
    commands (``gtn train``) are followed down to the parser that took the options."""
    del command  # the chain of (sub)command names is read from argv itself
    given: set[str] = set()
    current: argparse.ArgumentParser | None = parser
    words = list(argv)
    while current is not None:
        sub = None
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                sub = action
            for option in action.option_strings:
                if any(a == option or a.startswith(option + "=") for a in words):
                    given.add(action.dest)
        name = next((w for w in words if sub is not None and w in sub.choices), None)
        current = sub.choices[name] if sub is not None and name is not None else None
        if name is not None:
            words = words[words.index(name) + 1 :]
    given.discard("help")
    return frozenset(given)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        command = next((a for a in argv[:1] if a in COMMANDS), "")
        parser = build_parser(only=command)  # imports the command's module
        args = parser.parse_args(argv)
        args.given_options = given_options(parser, command, argv)
        if getattr(args, "no_progress", True) is False and not sys.stderr.isatty():
            args.no_progress = True  # progress bars in a log file are escape codes
        check_numbers(args)
        return COMMANDS[args.command].runner(args.command)(args)
    except (MetaQNNError, ArchitectureError) as exc:
        message = " ".join(str(exc).split())
        print(f"metaqnn: error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("metaqnn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (``metaqnn sample -n 1000 | head -1``): stop quietly, and keep
        # Python from complaining again when it flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
