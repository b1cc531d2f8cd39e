"""Worker processes that end with their parent and leave Ctrl-C to it.

A worker calls :func:`tie_to_parent` first thing: it ignores SIGINT (a Ctrl-C in a terminal
reaches the whole process group; the parent handles it and stops the workers), asks Linux to
send it SIGTERM when the parent dies (``prctl(PR_SET_PDEATHSIG)``, even after ``kill -9``),
and, on every system, watches its parent process id from a daemon thread. The parent starts
workers inside :func:`ignoring_sigint`, so that a Ctrl-C while a worker is still importing
its modules does not print a traceback from it either.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator

#: ``prctl`` option: the signal the kernel sends when the parent thread dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1


def _set_parent_death_signal(sig: int) -> bool:
    """``prctl(PR_SET_PDEATHSIG, sig)`` on Linux; False where it is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int, poll_s: float) -> None:
    while True:
        time.sleep(poll_s)
        if os.getppid() != parent:
            os._exit(1)


def tie_to_parent(parent: int, *, poll_s: float = 1.0) -> None:
    """Make this (worker) process ignore SIGINT and end when process ``parent`` ends.

    Args:
        parent: The parent's process id (as the parent saw it: ``os.getpid()`` there).
        poll_s: How often the watching thread checks the parent (where no death signal is
            available, the worker ends within this many seconds of its parent).
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the death signal was asked for
        os._exit(1)
    threading.Thread(target=_watch, args=(parent, poll_s), name="parent-watch",
                     daemon=True).start()  # fmt: skip


@contextlib.contextmanager
def ignoring_sigint() -> Iterator[None]:
    """Hold back SIGINT for the duration, to start worker processes: the calling (main) thread
    blocks it, so a process started meanwhile inherits the block and a Ctrl-C cannot
    interrupt its start-up; a SIGINT that arrives meanwhile (on any thread) is delivered as
    usual once the block ends. Does nothing off the main thread or where signal masks do not
    exist."""
    mask = getattr(signal, "pthread_sigmask", None)
    if mask is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    handler = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    old = mask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        mask(signal.SIG_SETMASK, old)
        signal.signal(signal.SIGINT, handler)
        if caught:
            signal.raise_signal(signal.SIGINT)


def quiet_resource_tracker() -> None:
    """Start multiprocessing's resource tracker (if it is not running yet) with its warning
    about leaked semaphores silenced: workers stopped at once (Ctrl-C, a time limit) leave
    their semaphores to it, and it removes them, but it would also print a warning."""
    try:
        from multiprocessing import resource_tracker
    except ImportError:  # pragma: no cover - no resource tracker on this system
        return
    option = "ignore:resource_tracker:UserWarning"
    added = option not in sys.warnoptions
    if added:
        sys.warnoptions.append(option)  # the tracker gets this process's -W options
    try:
        resource_tracker.ensure_running()
    finally:
        if added:
            sys.warnoptions.remove(option)
