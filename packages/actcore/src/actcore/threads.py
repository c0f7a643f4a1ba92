"""The one thread-count context manager of act."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


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
