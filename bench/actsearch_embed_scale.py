"""Union embedding of many candidates on the scalable (nearest-neighbour descent) path.

    /usr/bin/time -v .venv-dev/bin/python bench/actsearch_embed_scale.py [--rows 50000]

Synthetic candidates shaped like a live search's: 1,000 output values per function
(actcore's sample) and a 400-value Fisher CDF (about mlp-digits' length), in 50 clusters.
Prints the seconds per step; peak memory comes from ``/usr/bin/time -v``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from actsearch.embedding import _fuzzy_model, scalable


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    labels = rng.integers(0, 50, args.rows)
    outputs = rng.normal(scale=3.0, size=(50, 1000))[labels] + rng.normal(size=(args.rows, 1000))
    fisher = np.sort(rng.random((args.rows, 400)), axis=1) * (0.5 + labels[:, None] / 100)
    print(f"{args.rows:,} candidates; scalable path: {scalable(args.rows)}")
    start = time.perf_counter()
    a = _fuzzy_model(outputs.astype(np.float32), "outputs", args.seed, True, True)
    print(f"outputs graph (Euclidean, 15 neighbours): {time.perf_counter() - start:.1f} s")
    mark = time.perf_counter()
    b = _fuzzy_model(fisher.astype(np.float32), "fisher", args.seed, True, True)
    print(f"fisher graph (Manhattan, 3 neighbours): {time.perf_counter() - mark:.1f} s")
    mark = time.perf_counter()
    coords = (a + b).embedding_
    print(f"union layout: {time.perf_counter() - mark:.1f} s; total "
          f"{time.perf_counter() - start:.1f} s; finite: {bool(np.isfinite(coords).all())}")


if __name__ == "__main__":
    main()
