"""One run at a time on a job's files.

Two identical long jobs on the same output would both compute everything and the last
writer would win, or crash on each other's rows. A job holds :func:`exclusive` on its
work file while it runs; a second one is refused at once with a message naming the run
that holds it. The lock is the operating system's (``flock``), so a killed job never
leaves a stale lock behind. On systems without ``fcntl`` no lock is taken.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from actcore.errors import ActError

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file of ``path``: hidden, beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


@contextmanager
def exclusive(path: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Hold the lock of ``path`` (``what`` names it in the error) while the block runs."""
    if fcntl is None:
        yield
        return
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 300, 0).decode(errors="replace").strip() or "another run"
            raise ActError(
                f"{what} {Path(path)} is in use by {holder}; wait for that run to finish "
                "or stop it, then run this command again"
            ) from None
        os.ftruncate(fd, 0)
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {since}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock
