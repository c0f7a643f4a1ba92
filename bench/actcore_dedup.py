"""Deduplicate the four-node search space: each schema and their union.

Prints, per schema and for the union: functions, equivalence classes (and how many are
flagged non-finite), wall seconds, functions/second and the classes' digest (equal on
every machine: compare with ``ATEN_CPU_CAPABILITY=default``); then the process's peak
resident memory. Run:

    .venv-dev/bin/python bench/actcore_dedup.py
"""

from __future__ import annotations

import resource
import sys
import time

import torch

from actcore import Space, equivalence_classes

SCHEMAS = [
    "binary(unary(unary(x)),unary(x))",
    "binary(unary(x),unary(unary(x)))",
    "n-ary(unary(x),unary(x),unary(x))",
    "unary(binary(unary(x),unary(x)))",
    "unary(unary(unary(unary(x))))",
]


def run(space: Space, label: str) -> None:
    start = time.perf_counter()
    classes = equivalence_classes(space)
    wall = time.perf_counter() - start
    n = len(space)
    flagged = int(classes.nonfinite_flags().sum())
    print(
        f"{label:<36} {n:>9,} functions {len(classes):>9,} classes ({flagged:,} non-finite) "
        f"{wall:6.2f} s {n / wall:>9,.0f} fn/s  digest {classes.digest()}",
        flush=True,
    )


def main() -> None:
    print(f"torch {torch.__version__}; equivalence_classes runs torch single-threaded")
    only_union = "--union" in sys.argv
    if not only_union:
        for schema in SCHEMAS:
            run(Space(schema), schema)
    run(Space(*SCHEMAS), "union of the five schemas")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak resident memory {peak:.2f} GiB")


if __name__ == "__main__":
    main()
