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

from actbench.executors import worker_device
from actcore import ActError

# A job that hands each of two workers a unit of 60 s, then is killed (SIGTERM, turned
# into KeyboardInterrupt as ``act bench build`` does) while both units run.
JOB = textwrap.dedent("""
    import signal, sys, time
    from actbench.executors import make_executor

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if __name__ == "__main__":
        signal.signal(signal.SIGTERM, interrupt)
        try:
            with make_executor(2) as pool:
                futures = [pool.submit(time.sleep, 60) for _ in range(2)]
                time.sleep(3)  # both workers started and busy
                print("running", flush=True)
                for future in futures:
                    future.result()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
""")


def test_an_interrupted_job_stops_its_running_workers(tmp_path):
    """Units whose results nobody will collect are not waited for: before this, the
    pool's shutdown waited for each running unit (a whole stack of trainings), and a
    killed table build once hung for good with a worker blocked on its result."""
    script = tmp_path / "job.py"
    script.write_text(JOB)
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
