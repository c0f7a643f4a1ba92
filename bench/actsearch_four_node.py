"""The four-node search end to end: ``act search run`` on the union of the five four-node
schemas (1,023,516 functions, 387,359 classes) on a task (``mlp-digits``, or
``mlp3-fashion-mnist`` for real images), from an empty folder.

Prints each phase's wall time as the search logs it (classes and outputs, Fisher spectra,
union embedding), the time to the first suggestion, the suggestions' median and maximum
time, the whole run's wall time, and the peak resident memory of the whole process tree
(the search and its workers together, sampled every second from /proc).

    .venv-dev/bin/python bench/actsearch_four_node.py --out /tmp/four-node [--budget 100]
        [--workers 2] [--seed 0] [--task mlp-digits]

Then the top five functions of the search and the eight baselines are trained again with
seeds 0, 1 and 2 and their medians printed, best first (``--top 0`` skips this).

Run it again on the same folder to see a resumed search read every phase back.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

SCHEMAS = [
    "binary(unary(unary(x)),unary(x))", "binary(unary(x),unary(unary(x)))",
    "n-ary(unary(x),unary(x),unary(x))", "unary(binary(unary(x),unary(x)))",
    "unary(unary(unary(unary(x))))",
]
REPORTED = re.compile(r"(classes and outputs|fisher spectra|\w+ embedding): [\d.]+ s|"
                      r"first suggestion .*|\d+ suggestions: .*|^\d+ evaluations in .*")


def tree_rss(session: int) -> int:
    """Resident bytes of every process in ``session``."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) != session:  # fields after the name: state ppid pgrp session
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, IndexError, ValueError):
            continue
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--task", default="mlp-digits")
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fresh", action="store_true", help="delete --out first")
    parser.add_argument("--top", type=int, default=5, help="functions to retrain (0: none)")
    args = parser.parse_args()
    if args.fresh and args.out.exists():
        shutil.rmtree(args.out)
    act = shutil.which("act") or str(Path(sys.executable).with_name("act"))
    command = [act, "-v", "search", "run", "--task", args.task, "--budget",
               str(args.budget), "--workers", str(args.workers), "--seed", str(args.seed),
               "--out", str(args.out)]
    for schema in SCHEMAS:
        command += ["--space", schema]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    peak = [0]

    def sample() -> None:
        while child.poll() is None:
            peak[0] = max(peak[0], tree_rss(child.pid))
            time.sleep(1)

    threading.Thread(target=sample, daemon=True).start()
    assert child.stdout is not None
    for line in child.stdout:
        for part in line.replace("\r", "\n").splitlines():
            if REPORTED.search(part):
                print(f"[{time.perf_counter() - start:7.1f} s] {part.strip()}", flush=True)
    code = child.wait()
    print(f"exit {code}; wall {time.perf_counter() - start:.0f} s; peak resident memory of "
          f"the search and its workers {peak[0] / 2**30:.2f} GiB")
    if code == 0 and args.top:
        retrain(args.task, args.out / "leaderboard.csv", args.top)


def retrain(task: str, leaderboard: Path, top: int, seeds: tuple[int, ...] = (0, 1, 2)) -> None:
    """Median validation and test accuracy over ``seeds`` of the search's best and the
    baselines (trained side by side where the task's network allows it)."""
    import csv
    import statistics

    from actbench.stacked_training import train_many
    from actcore.readable import readable
    from actsearch.features import BASELINES

    with leaderboard.open() as fh:
        rows = list(csv.DictReader(fh))
    searched = {r["function"]: float(r["val_accuracy"]) for r in rows}
    best = [r["function"] for r in rows if r["function"] not in BASELINES][:top]
    print(f"median of seeds {list(seeds)} ({task}), best first:")
    names = [*best, *BASELINES]
    by_seed = [train_many(task, names, seed) for seed in seeds]
    lines = []
    for i, name in enumerate(names):
        runs = [results[i] for results in by_seed]
        val = statistics.median(r.val_accuracy for r in runs)
        test = statistics.median(r.test_accuracy for r in runs)
        tag = "baseline" if name in BASELINES else "found"
        lines.append((val, f"  {tag:<8} val {val:.4f}  test {test:.4f}  (search "
                           f"{searched.get(name, float('nan')):.4f})  {readable(name)}"))
    for _, line in sorted(lines, key=lambda pair: -pair[0]):
        print(line)


if __name__ == "__main__":
    main()
