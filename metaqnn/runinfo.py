"""What a run records about where it ran: versions, machine, device, git commit."""

from __future__ import annotations

import os
import platform
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@cache
def package_version() -> str:
    """The installed metaqnn version (``pyproject.toml`` is its one source)."""
    try:
        return metadata.version("metaqnn")
    except metadata.PackageNotFoundError:
        return "unknown"


def _git_commit() -> str:
    """The commit of the metaqnn checkout, or ``"unknown"`` outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def device_name(device: torch.device | str) -> str:
    """A human name for a device: the GPU model, or the CPU with its core count."""
    import torch

    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def run_metadata(device: torch.device | str = "cpu") -> dict[str, Any]:
    """Versions, machine and device of this process: plain values, safe to save anywhere."""
    import gymnasium
    import numpy
    import torch

    return {
        "metaqnn": package_version(),
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": numpy.__version__,
        "gymnasium": gymnasium.__version__,
        "platform": platform.platform(),
        "device": str(torch.device(device)),
        "device_name": device_name(device),
    }
