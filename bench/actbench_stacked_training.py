"""Functions trained per hour: stacked (:func:`actbench.train_many`) against one at a
time (:func:`actbench.train`), in the same run, one process of one torch thread.

For each case it trains the same functions alone and in stacks of K, with the task's full
recipe, and prints functions per hour both ways, their ratio,
and the median and largest validation-accuracy gaps between a function's two runs:
float32 rounding differs between a batched and a single matrix product, and some of the
table's functions amplify it as much as running on another CPU does. The functions are
drawn (seeded) from the shipped digits table's classes: the ones a table build trains.

Cases: ``mlp-digits`` (target >= 4x), ``mlp-digits-hulls`` (the hull paper's twelve
activations, a ``bench compare`` grid), ``mlp3-fashion-mnist`` (an MLP on Fashion-MNIST,
target >= 3x), and convolutional ones, where the automatic stack size is 1 (target: never
below 1x), with a forced stack beside it to show why.

Run on a quiet machine: ``.venv-dev/bin/python bench/actbench_stacked_training.py
[--cases mlp-digits,...]``.
"""

from __future__ import annotations

import argparse
import os
import random
import time

import torch

from actbench import load_table, train
from actbench.stacked_training import stack_size, train_many

# case: task, stack (None: automatic), functions stacked, functions alone, overrides
CASES = {
    "mlp-digits": ("mlp-digits", 32, 64, 64, {}),
    "mlp-digits-hulls": ("mlp-digits", 12, 12, 12, {}),
    "mlp3-fashion-mnist": ("mlp3-fashion-mnist", 32, 32, 32, {}),
    "cnn-digits": ("cnn-digits", None, 8, 8, {"epochs": 5}),
    "cnn-digits-forced": ("cnn-digits", 8, 8, 8, {"epochs": 5}),
    "lenet5-forced": ("lenet5-fashion-mnist", 4, 4, 4, {"epochs": 1, "train_images": 3000}),
}


# the hull paper's twelve (needs acthull): a bench compare grid
HULLS = ["identity(x)", "relu(x)", "tanh(x)", "leakyrelu(x)"] + [
    f"{kind}({bases})" for kind in ("convex_n", "affine_n")
    for bases in ("identity(x),relu(x)", "identity(x),tanh(x)", "relu(x),tanh(x)",
                  "identity(x),relu(x),tanh(x)")
]  # fmt: skip


def functions(case: str, count: int, seed: int = 0) -> list[str]:
    if case.endswith("-hulls"):
        return HULLS[:count]
    names = sorted(load_table("act-bench-digits-mlp").names())
    return random.Random(seed).sample(names, count)


def per_hour(seconds: float, count: int) -> float:
    return 3600 * count / seconds


def run_case(name: str) -> None:
    task, stack, stacked_count, solo_count, overrides = CASES[name]
    chosen = functions(name, stacked_count)
    size = stack_size(task, "cpu", stack)
    train(task, "relu", 0, **{**overrides, "epochs": 1})  # data loaded, kernels warm
    start = time.perf_counter()
    alone = [train(task, f, 0, **overrides) for f in chosen[:solo_count]]
    solo_s = time.perf_counter() - start
    start = time.perf_counter()
    together = train_many(task, chosen, 0, stack=size, **overrides)
    stacked_s = time.perf_counter() - start
    gaps = sorted(abs(a.val_accuracy - b.val_accuracy) for a, b in zip(alone, together))
    ok = sum(r.status == "ok" for r in together)
    solo_rate, stacked_rate = per_hour(solo_s, solo_count), per_hour(stacked_s, stacked_count)
    print(f"{name:<18} stack {size:>2}: alone {solo_rate:7.0f}/h ({solo_count} in "
          f"{solo_s:5.1f} s), stacked {stacked_rate:7.0f}/h ({stacked_count} in "
          f"{stacked_s:5.1f} s, {ok} ok): {stacked_rate / solo_rate:4.2f}x; val accuracy gap "
          f"median {100 * gaps[len(gaps) // 2]:.2f}, largest {100 * gaps[-1]:.2f} points")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated cases")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()[0]:.2f} (quiet: < 0.3); torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, one thread")
    for name in args.cases.split(","):
        run_case(name)


if __name__ == "__main__":
    main()
