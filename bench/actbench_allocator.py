"""What keeping freed memory buys CPU training (:mod:`actcore.allocator`).

Each case is one training through ``actbench.train`` in a fresh process, one thread, run
with ``ACT_KEEP_FREED_MEMORY=0`` (glibc's defaults) and ``=1`` (act's default) in turn,
``--rounds`` times; ``--side-by-side`` runs two copies of each at once, as a build's two
workers do. Printed per case and setting: the median CPU seconds of the training, its
minor page faults and the process's peak memory, the speed-up, and whether both settings
gave the same losses and accuracies to the last bit.

Cases: a training of the CNN table (``allconv-fashion-mnist``, its whole recipe) with
``add(tanh(x),erf(x))`` and with ReLU; one epoch of ``lenet5-fashion-mnist`` (the hull
paper's recipe) on 12,000 images with ReLU and with aff({id, ReLU, tanh}). Needs the
Fashion-MNIST files (see the actbench page). Run on a quiet machine:
``.venv-dev/bin/python bench/actbench_allocator.py [--rounds 3] [--side-by-side]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CASES = [
    ("allconv-fashion-mnist", "add(tanh(x),erf(x))", {}),
    ("allconv-fashion-mnist", "relu(x)", {}),
    ("lenet5-fashion-mnist", "relu(x)", {"epochs": 1, "train_images": 12000}),
    ("lenet5-fashion-mnist", "affine_n(identity(x),relu(x),tanh(x))",
     {"epochs": 1, "train_images": 12000}),
]

CHILD = """
import json, resource, sys, time
import torch
import actbench
torch.set_num_threads(1)
task, activation, overrides = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
actbench.train(task, activation, 0, epochs=1, train_images=512)  # imports, data, kernels
before = resource.getrusage(resource.RUSAGE_SELF)
result = actbench.train(task, activation, 0, **overrides)
after = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({
    "cpu_s": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
    "faults": after.ru_minflt - before.ru_minflt, "peak_mb": after.ru_maxrss / 1024,
    "numbers": [result.train_loss, result.val_loss, result.test_loss, result.val_accuracy],
}))
"""


def run(case: tuple, keep: bool, copies: int) -> list[dict]:
    """``copies`` processes training ``case`` at once; each one's figures."""
    task, activation, overrides = case
    env = os.environ | {"ACT_KEEP_FREED_MEMORY": "1" if keep else "0", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", CHILD, task, activation, json.dumps(overrides)]
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
                 for _ in range(copies)]  # fmt: skip
    found = []
    for process in processes:
        out, _ = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"{task} {activation}: the training process failed")
        found.append(json.loads(out.strip().splitlines()[-1]))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--side-by-side", action="store_true",
                        help="two processes of each at once, as a build's two workers")
    args = parser.parse_args()
    copies = 2 if args.side_by_side else 1
    print(f"load average {os.getloadavg()[0]:.2f} (quiet: < 0.3); {copies} process(es) at "
          f"once, one thread each, {args.rounds} rounds")
    print("| task | activation | CPU s, glibc defaults | kept | speed-up | page faults, "
          "defaults | kept | peak MB, defaults | kept | same numbers |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for case in CASES:
        figures: dict[bool, list[dict]] = {False: [], True: []}
        for _ in range(args.rounds):  # interleaved: load changes hit both alike
            for keep in (False, True):
                figures[keep] += run(case, keep, copies)
        cpu, faults, peak = ({k: statistics.median(f[key] for f in figures[k])
                              for k in figures} for key in ("cpu_s", "faults", "peak_mb"))
        same = len({json.dumps(f["numbers"]) for k in figures for f in figures[k]}) == 1
        print(f"| {case[0]} | {case[1]} | {cpu[False]:.2f} | {cpu[True]:.2f} | "
              f"{cpu[False] / cpu[True]:.2f}x | {faults[False]:,.0f} | {faults[True]:,.0f} | "
              f"{peak[False]:.0f} | {peak[True]:.0f} | {'yes' if same else 'NO'} |",
              flush=True)


if __name__ == "__main__":
    main()
