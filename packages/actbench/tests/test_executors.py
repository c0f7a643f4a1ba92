"""Worker pools stop at once when their job is interrupted (``kill``, Ctrl-C); the
device their work runs on."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from actbench import executors
from actbench.executors import default_workers, make_executor, spread_over_gpus, worker_device
from actcore import ActError

# A job that hands each of two workers a unit of 60 s, then is killed (SIGTERM, turned
# into KeyboardInterrupt as ``act bench build`` does) while both units run.
JOB = textwrap.dedent("""
    import signal, sys, time
    from contextlib import contextmanager
    from actbench.executors import Pool, make_executor

    @contextmanager
    def through_pool(workers):
        with Pool(workers) as pool:
            yield pool.executor

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if __name__ == "__main__":
        signal.signal(signal.SIGTERM, interrupt)
        try:
            with EXECUTOR as pool:
                futures = [pool.submit(time.sleep, 60) for _ in range(2)]
                time.sleep(3)  # both workers started and busy
                print("running", flush=True)
                for future in futures:
                    future.result()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
""")


@pytest.mark.parametrize("executor", ["make_executor(2)", "through_pool(2)"])
def test_an_interrupted_job_stops_its_running_workers(tmp_path, executor):
    """Units whose results nobody will collect are not waited for: before this, the
    pool's shutdown waited for each running unit (a whole stack of trainings), and a
    killed table build once hung for good with a worker blocked on its result. The same
    through :class:`Pool`, as builds, comparisons and searches use it (a killed build
    once waited for its running units there)."""
    script = tmp_path / "job.py"
    script.write_text(JOB.replace("EXECUTOR", executor))
    job = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert job.stdout.readline().strip() == "running"
        start = time.monotonic()
        job.send_signal(signal.SIGTERM)
        assert job.wait(timeout=30) == 0
        assert time.monotonic() - start < 20  # not the 57 s the units had left
        assert job.stdout.read().strip() == "interrupted"
    finally:
        job.kill()


def test_the_workers_device_is_this_machines_unless_they_are_a_dask_clusters():
    """Local workers run on this machine: its default, and a CUDA device it lacks fails
    at once. A Dask cluster's workers may have devices this machine lacks: a named one is
    only checked, and none named leaves each worker its own."""
    assert worker_device(None, None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert worker_device("cuda:1", "tcp://gpu-node:8786") == torch.device("cuda", 1)
    assert worker_device(None, "tcp://gpu-node:8786") is None
    with pytest.raises(ActError, match="unknown device 'gpu'"):
        worker_device("gpu", "tcp://gpu-node:8786")
    if not torch.cuda.is_available():
        with pytest.raises(ActError, match="no CUDA device is available"):
            worker_device("cuda", None)


def _number() -> int | None:
    time.sleep(1)  # each worker gets one
    return executors.WORKER_NUMBER


def test_each_local_worker_has_its_own_number():
    """The number :func:`spread_over_gpus` gives a GPU by."""
    with make_executor(3) as pool:
        numbers = [f.result() for f in [pool.submit(_number) for _ in range(3)]]
    assert sorted(numbers) == [0, 1, 2]


def test_workers_take_the_gpus_in_turn(monkeypatch):
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    assert [spread_over_gpus(n) for n in range(5)] == chosen == [0, 1, 2, 0, 1]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert spread_over_gpus(0) is None and len(chosen) == 5


def test_work_on_gpus_starts_one_worker_per_gpu_unless_told(monkeypatch):
    """A CUDA context per worker costs hundreds of MB, and workers on one GPU take turns:
    by default one worker per GPU the work runs on; CPU work takes every core."""
    cores = default_workers("cpu")
    assert cores >= 1 and default_workers() == cores
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert default_workers("cuda") == default_workers(torch.device("cuda")) == 3
    assert default_workers("cuda:2") == 1
    assert default_workers(None) == 3  # each worker's own default: CUDA here
    assert default_workers("cpu") == cores
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_workers(None) == cores


def test_only_work_on_plain_cuda_spreads_over_the_gpus():
    """A CPU build on a GPU machine starts no CUDA in its workers; a device with an index
    is the one every worker uses."""
    in_turn = executors._gpus_in_turn
    assert in_turn("cuda") and in_turn(torch.device("cuda")) and in_turn(None)
    assert not in_turn("cpu") and not in_turn(torch.device("cpu"))
    assert not in_turn("cuda:1") and not in_turn(torch.device("cuda", 0))


def _gpu() -> int:
    time.sleep(1)
    return torch.cuda.current_device()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_two_workers_train_on_two_gpus():
    with make_executor(2, device="cuda") as pool:
        assert sorted(f.result() for f in [pool.submit(_gpu) for _ in range(2)]) == [0, 1]


def test_parallelism_counts_what_the_executor_runs_at_once():
    """A process pool's processes, a Dask cluster's threads over all its workers, and one
    for work in this process."""
    from concurrent.futures import ThreadPoolExecutor

    distributed = pytest.importorskip("distributed")
    from actbench.executors import SerialExecutor, parallelism

    assert parallelism(SerialExecutor()) == 1
    with ThreadPoolExecutor(3) as threads:
        assert parallelism(threads) == 3
    with make_executor(workers=0) as serial:
        assert parallelism(serial) == 1
    with (distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=False,
                                   dashboard_address=":0") as cluster,
          distributed.Client(cluster) as client):
        assert parallelism(client.get_executor()) == 4
