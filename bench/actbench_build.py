"""Throughput of ``act bench build`` and the overhead of its Dask path.

    .venv-dev/bin/python bench/actbench_build.py [--classes 16] [--workers 2] [--repeats 2]

Builds the same small table (``--classes`` classes, the start of the build order, of
``binary(unary(x),unary(x))`` over relu/tanh/sigmoid/swish and add/mul/max on mlp-digits,
full recipe, 1 seed + the Fisher spectrum) several ways, each into a fresh output:

* ``local``: the default, a spawn process pool of ``--workers`` processes;
* ``dask-cold``: ``--scheduler local``, a Dask LocalCluster of ``--workers`` single-thread
  processes started (and stopped) inside the timing;
* ``dask-warm``: a LocalCluster started beforehand, as on a real cluster; the build only
  connects to its address.

Prints functions (table rows) per hour for each and the overhead of Dask relative to
local processes; writes the numbers to docs/act-bench-build-timing.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from actbench.build import BuildConfig, build
from actbench.card import hardware

OPERATORS = ["relu", "tanh", "sigmoid", "swish", "add", "mul", "max"]


def timed(config: BuildConfig, **where) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = build(config, Path(tmp) / "t.json", progress=False, **where)
        seconds = time.perf_counter() - start
    assert summary.out is not None and summary.computed == summary.units
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", default="docs/act-bench-build-timing.json")
    args = parser.parse_args()
    from distributed import LocalCluster

    config = BuildConfig(task="mlp-digits", schemas=["binary(unary(x),unary(x))"],
                         operators=OPERATORS, seeds=1, limit=args.classes)  # fmt: skip
    times: dict[str, list[float]] = {"local": [], "dask-cold": [], "dask-warm": []}
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster:  # fmt: skip
        timed(config, scheduler=cluster.scheduler_address)  # warm the workers up
        for _ in range(args.repeats):  # interleaved, so load drifts hit every mode
            times["local"].append(timed(config, workers=args.workers))
            times["dask-cold"].append(timed(config, workers=args.workers, scheduler="local"))
            times["dask-warm"].append(timed(config, scheduler=cluster.scheduler_address))
    result = {"classes": args.classes, "workers": args.workers, "seeds": 1,
              "hardware": hardware(), "seconds": times}  # fmt: skip
    base = statistics.median(times["local"])
    for mode, values in times.items():
        mid = statistics.median(values)
        result[mode] = {"median_s": mid, "functions_per_hour": 3600 * args.classes / mid,
                        "overhead_vs_local": mid / base - 1}  # fmt: skip
        print(f"{mode:<10} median {mid:6.1f}s  {3600 * args.classes / mid:7.0f} functions/h "
              f"(1 seed)  overhead vs local {100 * (mid / base - 1):+5.1f}%  runs {values}")
    Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
