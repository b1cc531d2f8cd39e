"""Light commands answer without importing torch (``metaqnn --version`` took 10.7 s when every
command's module was imported to build the parser)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
from metaqnn.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("torch imported:", "torch" in sys.modules, file=sys.stderr)
"""


@pytest.mark.parametrize(
    "argv", [["--version"], ["--help"], ["sample", "-n", "2"], ["space"], ["train", "--help"]]
)
def test_a_light_command_imports_no_torch(argv):
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    light = argv[0] != "train"
    assert f"torch imported: {not light}" in done.stderr, done.stderr


def test_no_escape_codes_when_stderr_is_not_a_terminal(tmp_path):
    """Progress bars are for terminals: a log file gets the printed lines only."""
    code = "import sys; from metaqnn.cli import main; sys.exit(main())"
    done = subprocess.run(
        [sys.executable, "-c", code, "train", "[C(4,3,1), SM(10)]", "--dataset", "digits",
         "--epochs", "1", "--out", str(tmp_path / "m.pt")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stderr + done.stdout and "\r" not in done.stderr, done.stderr
