"""One owner per run folder: an exclusive ``flock`` on ``RUN/.lock``, held by the process that
writes the run (a search, a GTN teacher, a design) until it closes or exits.

The operating system releases the lock when the process ends, by any means (``kill -9``
included), so a stale lock file never blocks a resume; a second writer while the first lives
gets a one-line :class:`RunInUseError` naming the owner's process id. Where ``fcntl`` does not
exist (Windows) the lock does nothing. :func:`waiting_lock` is the blocking kind, for short
sections such as filling a cache.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from metaqnn.errors import ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: The lock file in a run folder.
LOCK_NAME = ".lock"


class RunInUseError(ConfigError):
    """Another live process owns the run folder."""


class RunLock:
    """An exclusive lock on a run folder (created if missing).

    Use it as a context manager, or :meth:`acquire` and :meth:`release`.
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock.

        Raises:
            RunInUseError: If another process (or another lock object) holds it.
            ConfigError: If the folder cannot be created or written.
        """
        if self._fd is not None:
            return self
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(f"{self.run_dir}: cannot write the run folder "
                              f"({exc.strerror or exc})") from None  # fmt: skip
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise RunInUseError(f"{self.run_dir} is in use by process {owner}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock up (the file stays; it is only a lock)."""
        if self._fd is None:
            return
        if fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


@contextmanager
def waiting_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Wait for, then hold, an exclusive ``flock`` on the file ``path`` (created, with its
    folder): for short sections that several processes may enter at once, such as filling a
    shared cache (two design runs started together on a fresh machine both extract MNIST).
    Where ``fcntl`` does not exist it does nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)  # blocks until the holder leaves the section
        yield
    finally:
        os.close(fd)  # closing releases the lock
