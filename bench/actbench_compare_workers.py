"""``act bench compare`` on this machine's cores: one two-thread run at a time, or two
one-thread workers side by side?

Trains the same runs (LeNet-5 on real Fashion-MNIST, the hull paper's recipe, one epoch
of 54,000 images) both ways and prints runs per hour for each, and their ratio, with the
largest difference in test accuracy between the two ways (two thread counts sum in
other orders, so a run's figures may differ by float noise).

Run on a quiet machine: ``.venv-dev/bin/python bench/actbench_compare_workers.py
[--runs 4]``.
"""

from __future__ import annotations

import argparse
import functools
import os
import time

import torch

from actbench.compare import run_comparison
from actbench.executors import make_executor
from actbench.stacked_training import train_many

ACTIVATIONS = ["relu(x)", "tanh(x)", "affine_n(identity(x),relu(x),tanh(x))", "identity(x)"]


def timed(runs: int, workers: int, threads: int | None) -> tuple[float, list]:
    """Seconds for ``runs`` trainings on ``workers`` processes (0: here, ``threads``)."""
    one = functools.partial(train_many, "lenet5-fashion-mnist", stack=1, epochs=1,
                            threads=threads)
    start = time.perf_counter()
    with make_executor(workers) as executor:
        results = run_comparison("lenet5-fashion-mnist", ACTIVATIONS[:runs], [0], one,
                                 executor=executor)
    return time.perf_counter() - start, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} (quiet: < 0.3); torch "
          f"{torch.__version__}, {os.cpu_count()} CPUs")
    serial_s, serial = timed(args.runs, 0, 2)
    pool_s, pooled = timed(args.runs, 2, None)
    gap = max(abs(a.test_accuracy - b.test_accuracy) for a, b in zip(serial, pooled, strict=True))
    print(f"{args.runs} LeNet-5 runs, 1 epoch of 54,000 images each")
    print(f"one at a time, 2 threads : {serial_s:6.1f} s  {3600 * args.runs / serial_s:6.0f} "
          "runs/h")
    print(f"2 workers, 1 thread each : {pool_s:6.1f} s  {3600 * args.runs / pool_s:6.0f} runs/h")
    print(f"ratio (workers / serial)  : {serial_s / pool_s:.2f}x; largest test accuracy gap "
          f"{100 * gap:.2f} points")


if __name__ == "__main__":
    main()
