"""Batched evaluation throughput: the functions of binary(unary(x),unary(x)).

Prints functions/second for ``evaluate`` on the 1,000-point equivalence sample and on
80 feature points, against compiling and calling each function alone. Run:

    .venv-dev/bin/python bench/actcore_evaluate.py
"""

from __future__ import annotations

import time

import torch

from actcore import Space, evaluate, sample_points, to_module


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    names = [str(e) for e in Space("binary(unary(x),unary(x))")]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(names)} functions")
    for n in (1000, 80):
        x = sample_points(n)
        evaluate(names[:50], x)  # warm up
        wall = timed(lambda x=x: evaluate(names, x))
        print(f"evaluate, {n:>4} points: {wall:6.2f} s {len(names) / wall:>10,.0f} functions/s")
    x = sample_points()
    subset = names[:500]
    wall = timed(lambda: [to_module(name)(x) for name in subset])
    print(f"one module at a time:   {wall:6.2f} s {len(subset) / wall:>10,.0f} functions/s")


if __name__ == "__main__":
    main()
