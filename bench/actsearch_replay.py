"""Benchmark actsearch's replay on a ~3,000-function table (prints figures).

No public Act-Bench file ships with act, so the table is SYNTHESISED: the unique functions
of binary(unary(x),unary(x)) (actcore's equivalence classes), a synthetic validation
accuracy (chance for non-finite or exploding functions, else rising with the function's
correlation with ReLU on the sample, plus noise) and a synthetic 500-bin "Fisher CDF"
(the CDF of the function's clipped outputs). Only timings are meaningful.

    .venv-dev/bin/python bench/actsearch_replay.py [--trials 100] [--budget 100] [--jobs 2]

Targets (issue 7): first union embedding <= 30 s; each later suggestion <= 1 s;
100 trials x 100 evaluations <= 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def synthetic_table(seed: int = 0):
    from actbench.tables import Table, TableRecord
    from actcore import Space, equivalence_classes
    from actsearch.features import output_features

    classes = equivalence_classes(Space("binary(unary(x),unary(x))"))
    names = classes.representatives
    out = output_features(names)
    rng = np.random.default_rng(seed)
    relu = np.maximum(output_features(["relu(x)"])[0], 0)
    records = {}
    for name, row in zip(names, out):
        ok = np.isfinite(row).all() and np.abs(row).max() < 1e3
        if ok and row.std() > 0:
            r = np.corrcoef(row, relu)[0, 1]
            acc = float(np.clip(0.1 + 0.8 * max(r, 0) ** 2 + rng.normal(0, 0.03), 0.1, 0.95))
        else:
            acc = 0.1
        cdf = (list(np.searchsorted(np.sort(np.clip(row, -5, 5)), np.linspace(-5, 5, 500))
                    / len(row)) if np.isfinite(row).all() else [])
        records[name] = TableRecord(
            train_accuracy=acc, val_accuracy=acc, train_loss=1, val_loss=1,
            test_accuracy=acc, test_loss=1, equivalent=classes.members(name),
            fisher_cdf=cdf,
        )
    return Table(records, source="synthetic binary(unary(x),unary(x))")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    args = parser.parse_args()

    from actsearch import replay, replay_summary
    from actsearch.features import table_features
    from actsearch.regressors import get_regressor
    from actsearch.strategies import SearchState, get_strategy

    t = time.perf_counter()
    table = synthetic_table()
    features = table_features(table)
    print(f"table: {len(table)} unique functions, {int(features.candidates.sum())} candidates "
          f"(built in {time.perf_counter() - t:.1f} s)")

    with tempfile.TemporaryDirectory() as cache:
        t = time.perf_counter()
        import umap  # noqa: F401  (numba-compiled on first import; counted separately)

        print(f"import umap: {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        problem = replay.prepare(table, features, "union", seed=0, cache=cache)
        print(f"first union embedding ({int(features.candidates.sum())} candidates): "
              f"{time.perf_counter() - t:.1f} s  [target <= 30 s]")
        t = time.perf_counter()
        replay.prepare(table, features, "union", seed=0, cache=cache)
        print(f"cached union embedding: {time.perf_counter() - t:.3f} s")

    rng = np.random.default_rng(0)
    cand = np.flatnonzero(problem.candidates)
    for name in ("knr", "rfr", "svr", "gpr"):
        state = SearchState(problem.layouts[0], problem.candidates, get_regressor(name), rng)
        for row in rng.choice(cand, 99, replace=False):
            state.observed[int(row)] = float(problem.accuracy[row])
        suggest = get_strategy("surrogate").suggest
        suggest(state, 1)
        t = time.perf_counter()
        for _ in range(5):
            suggest(state, 1)
        print(f"suggestion with {name} (99 evaluated, {len(cand)} candidates): "
              f"{(time.perf_counter() - t) / 5 * 1000:.1f} ms  [target <= 1 s]")

    algorithm = replay.Algorithm("surrogate", "knr", "union")
    t = time.perf_counter()
    results = replay.replay({"union": problem}, [algorithm], args.trials, args.budget,
                            jobs=args.jobs, progress=False)
    elapsed = time.perf_counter() - t
    summary = replay_summary.summarise(problem, algorithm, results[algorithm])
    print(f"replay KNR (union): {args.trials} trials x {args.budget} evaluations on "
          f"{args.jobs} processes: {elapsed:.1f} s  [target <= 600 s]")
    print(f"  final best {summary.final_best_mean:.4f}, beat ReLU after "
          f"{summary.evals_to_beat_relu:.1f} evals, Spearman {summary.spearman_mean:.3f}")


if __name__ == "__main__":
    main()
