"""Worker processes that do not outlive the job that started them.

A pool's workers are separate processes: when the main process is killed (``kill -9``,
an out-of-memory kill) they would keep running, each holding its memory, with nobody to
collect their results. :func:`exit_with_parent`, called first thing in a worker, asks
Linux to kill the worker as soon as its parent dies. On other systems it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def exit_with_parent(parent: int) -> None:
    """Make this process die with ``parent`` (the pid of the process that started it)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
