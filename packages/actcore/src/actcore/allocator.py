"""Freed memory kept for reuse, so that CPU training does not fault its buffers in again.

A training step on a CPU allocates and frees the same large buffers every step (feature
maps, their gradients, a batch's copies), and an evaluation pass larger ones still.
glibc serves a block over its mmap threshold (128 KiB at first, rising with use to at
most 32 MiB) straight from the operating system and hands it back when it is freed, and
trims the free top of its heap above a threshold of its own; every time such memory is
taken again, the kernel faults it in page by page: 450,000-850,000 page faults in one
training of the CNN table or one LeNet-5 epoch here, 12-19% of its CPU time
(``bench/actbench_allocator.py``).
Serving every block from the heap (no mmap) and trimming the heap only above 1 GiB of
free top keeps freed blocks for the next step. The arithmetic is the same, on the same
values; the process keeps its peak memory until it ends.

:func:`keep_freed_memory` does it once per process (glibc's ``mallopt``; elsewhere, as
on macOS or musl, nothing happens). ``ACT_KEEP_FREED_MEMORY=0`` leaves glibc's defaults,
for a process that must give memory back between trainings.
"""

from __future__ import annotations

import ctypes
import functools
import os

ENV = "ACT_KEEP_FREED_MEMORY"
#: glibc's mallopt parameters (malloc.h) and the values set
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
MMAP_MAX = 0  # blocks mapped from the system at once: none, every block from the heap
TRIM_THRESHOLD = 2**30


@functools.cache
def keep_freed_memory() -> bool:
    """Ask the C library to keep freed memory for reuse (once per process; see the module
    doc); whether it did. False where ``ACT_KEEP_FREED_MEMORY=0`` or the C library has no
    glibc ``mallopt``."""
    if os.environ.get(ENV, "1").strip() == "0":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no C library to ask, or not glibc's
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; musl's does nothing and returns 0
    return bool(mallopt(M_MMAP_MAX, MMAP_MAX)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
