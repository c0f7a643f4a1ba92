"""Fisher spectra per second on mlp-digits: one function at a time against many per pass.

Samples functions of the four-node space (the union of its five schemas), computes their
spectra with actfim's batch job (``spectra_for_activations``: model, K-FAC factors,
eigenvalues, CDF record) in one process, and prints functions per second for each stack
size and thread count, with the share of valid spectra (equal in every row: stacking
changes the cost, not the answer). A search runs one such process per worker.

    .venv-dev/bin/python bench/actfim_stacked.py [--functions 2048] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import random
import resource
import time

import torch

from actbench.fisher import fisher_batch, model_factory
from actcore import Space
from actfim.batch import spectra_for_activations

FOUR_NODE = [
    "binary(unary(unary(x)),unary(x))", "binary(unary(x),unary(unary(x)))",
    "n-ary(unary(x),unary(x),unary(x))", "unary(binary(unary(x),unary(x)))",
    "unary(unary(unary(unary(x))))",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=2048)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--stacks", type=int, nargs="+", default=[1, 64, 256])
    args = parser.parse_args()
    names = [str(e) for e in Space(*FOUR_NODE)]
    functions = random.Random(0).sample(names, args.functions)
    inputs, targets = fisher_batch("digits", 32, 0, None)
    make = model_factory("mlp-digits")
    spectra_for_activations(make, functions[:256], inputs, targets, progress=False)  # warm up
    print(f"mlp-digits, Fisher batch 32, {args.functions} functions of the four-node space")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for stack in args.stacks:
            count = min(len(functions), 512) if stack == 1 else len(functions)
            start = time.perf_counter()
            records = spectra_for_activations(make, functions[:count], inputs, targets,
                                              progress=False, stack=stack)
            wall = time.perf_counter() - start
            valid = sum(r.valid for r in records.values()) / count
            print(f"  {threads} thread(s), {stack:>3} per pass: {count / wall:7.0f} functions/s "
                  f"({count} functions, {valid:.1%} valid)", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak resident memory: {peak:.2f} GiB")


if __name__ == "__main__":
    main()
