"""The ``metaqnn`` command line: :mod:`.main` (the command table), one module per command,
and :mod:`.options` (what they share; it imports no command)."""

from metaqnn.cli.main import main

__all__ = ["main"]
