"""torch's default generator under one lock: jobs in threads of one process (a Dask
worker with several threads) draw what they would draw one at a time."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress

import torch

from actcore.threads import seeded


def test_seeded_draws_only_from_its_own_seed_beside_another_thread():
    barrier = threading.Barrier(2, timeout=0.5)

    def draws(seed: int, meet: bool) -> torch.Tensor:
        with seeded(seed):
            first = torch.rand(3)
            if meet:  # wait for the other thread: unless it is kept out, it draws here too
                with suppress(threading.BrokenBarrierError):  # kept out: it waits its turn
                    barrier.wait()
            return torch.cat([first, torch.rand(3)])

    state = torch.get_rng_state()
    alone = [draws(seed, False) for seed in range(2)]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(draws, range(2), [True, True]))
    assert all(torch.equal(a, b) for a, b in zip(alone, together, strict=True))
    assert not torch.equal(alone[0], alone[1])
    assert torch.equal(torch.get_rng_state(), state)  # the caller's stream is untouched
