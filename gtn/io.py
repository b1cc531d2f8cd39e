"""Saving torch objects safely."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename over ``path``.

    A reader (or a run killed mid-write) sees either the old file or the new one, never a
    torn one. Parent folders are created; the file gets the usual permissions (umask).

    Raises:
        FileExistsError: If ``path`` exists and is not a regular file (a folder, a device such
            as ``/dev/null``, a socket): it is never renamed over.
    """
    path = Path(path)
    if path.exists() and not path.is_file():
        raise FileExistsError(f"{path} exists and is not a regular file; not replacing it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
