"""Output files that are checked before the work and written atomically.

A command that works for minutes and then writes a file should fail on a bad output path
*before* the work, not after it (losing the result). :func:`check_output_path` is that check;
:func:`atomic_write` / :func:`atomic_save` then write through a temporary file in the target
folder that is renamed onto the target, so a reader (or a run killed mid-write) sees the old
file or the new one, never a torn one. The rename only ever replaces a regular file or takes a
new name: a folder, a device (``/dev/null``), a pipe or a socket at the target is refused.

Typical use::

    out = check_output_path(args.out, force=args.force)  # before training
    ...
    atomic_save(payload, out)  # after training
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gtn.io import atomic_save as gtn_atomic_save
from metaqnn.errors import ConfigError

#: Longest file name most file systems accept (bytes).
_NAME_MAX = 255


def _not_regular(path: Path) -> str:
    """Why ``path`` may not be replaced by a file ("" when it is a regular file or absent)."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # a new name (or a bad folder: see caller)
        return ""
    except OSError as exc:
        return f"cannot be inspected ({exc.strerror or exc})"
    if stat.S_ISDIR(mode):
        return "is a folder; give a file path"
    if not stat.S_ISREG(mode):
        return "is not a regular file (a device, pipe or socket); refusing to replace it"
    return ""


def check_output_path(
    path: str | os.PathLike[str], *, force: bool = False, option: str = "--out"
) -> Path:
    """Check, before any work, that a file can be written at ``path`` (nothing is left behind).

    Args:
        path: The output file.
        force: Allow replacing an existing regular file.
        option: How the user gave the path (named in the messages).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: One line naming the path: it is a folder, a device or another non-regular
            file; it exists and ``force`` is off; its name is too long; the nearest existing
            folder above it is not a folder or cannot be written in (permissions, read-only
            file system; found by creating and removing a probe file there).
    """
    text = os.fspath(path)
    if "\0" in text:
        raise ConfigError(f"{option} {text!r}: not a usable path (embedded null byte)")
    path = Path(text)
    if not path.name or path.name in (".", ".."):
        raise ConfigError(f"{option} {path}: is a folder; give a file path")
    if len(path.name.encode(errors="surrogateescape")) > _NAME_MAX:
        raise ConfigError(f"{option} {path}: file name longer than {_NAME_MAX} bytes")
    problem = _not_regular(path)
    if problem:
        raise ConfigError(f"{option} {path}: {problem}")
    if path.exists() and not force:
        raise ConfigError(f"{option} {path}: already exists (use --force to overwrite it)")
    folder = path.absolute().parent
    while not folder.exists() and not folder.is_symlink() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(f"{option} {path}: {folder} is not a folder")
    try:  # a real probe: access() says yes to root on read-only or virtual file systems
        fd, probe = tempfile.mkstemp(prefix=".metaqnn-probe-", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(
            f"{option} {path}: cannot write in {folder} ({exc.strerror or exc})"
        ) from None
    return path


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Write a file through a temporary file in its folder, renamed onto ``path`` at the end.

    Parent folders are created; the file gets the usual permissions (umask). The temporary
    file is removed if ``write`` fails.

    Args:
        path: The file to write (a regular file, or a new name).
        write: Writes the content to the temporary path it is given.

    Returns:
        ``path``.

    Raises:
        ConfigError: If ``path`` is a folder, device, pipe or socket, or its folder cannot be
            created or written in.
    """
    path = Path(path)
    problem = _not_regular(path)
    if problem:
        raise ConfigError(f"{path}: {problem}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name[:200]}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        problem = _not_regular(path)  # something may have appeared there meanwhile
        if problem:
            raise ConfigError(f"{path}: {problem}")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` of ``obj`` through :func:`gtn.io.atomic_save` (temporary file, fsync,
    rename), with this module's one-line errors.

    Args:
        obj: What to save.
        path: The file to write.

    Returns:
        ``path``.

    Raises:
        ConfigError: If ``path`` is a folder, device, pipe or socket, or cannot be written.
    """
    path = Path(path)
    problem = _not_regular(path)
    if problem:
        raise ConfigError(f"{path}: {problem}")
    try:
        return gtn_atomic_save(obj, path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
