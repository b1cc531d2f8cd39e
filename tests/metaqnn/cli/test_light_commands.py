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
    "argv",
    [
        ["--version"],
        ["--help"],
        ["sample", "-n", "2"],
        ["space"],
        ["validate", "[C(64,3,1), P(2,2), FC(128), SM(10)]"],
        ["datasets"],
        ["train", "--help"],
    ],
)
def test_a_light_command_imports_no_torch(argv):
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    light = argv[0] != "train"
    assert f"torch imported: {not light}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def test_validate_and_datasets_still_answer_in_full():
    """Without torch, ``validate`` still traces shapes and counts FLOPs, and ``datasets`` still
    lists the registry with availability."""
    done = subprocess.run([sys.executable, "-c", PROBE, "validate", "--space", "digits",
                           "[C(16,3,1), P(2,2), FC(64), SM(10)]"], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert "16x8x8" in done.stdout and "FLOPs per image: " in done.stdout, done.stdout
    done = subprocess.run([sys.executable, "-c", PROBE, "datasets"], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert "| digits " in done.stdout and "| yes " in done.stdout, done.stdout


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
