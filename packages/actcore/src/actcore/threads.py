"""torch's process-wide settings that act changes for a while: the thread count, and the
default generator, which threads of one process share.

A Dask worker with several threads runs several of act's jobs in one process. A training
seeds torch's default generator and draws its initial weights (and dropout masks, and
augmentations) from it; two side by side would draw from each other's stream. So a job
that seeds it holds :data:`TORCH_RNG` until it is done, and the results are the same
whoever runs beside it. (The thread count needs no lock: OpenMP keeps it per thread.)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

TORCH_RNG = threading.RLock()


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run with ``count`` torch threads (None: leave it), restoring the number afterwards.

    Single-threaded runs are act's usual choice for small blocks of work (equivalence
    chunks, digits trainings, factor decompositions side by side), where a second thread
    costs more in synchronisation than it gains, and far more on a busy machine.
    """
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Run with torch's default generators seeded with ``seed`` (CPU's, and ``device``'s
    where it is a CUDA device) and no other thread of this process drawing from them;
    their states are restored afterwards."""
    cuda = [device] if device is not None and device.type == "cuda" else []
    with TORCH_RNG, torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield
