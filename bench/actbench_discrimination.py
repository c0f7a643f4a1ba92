"""Can a table's task tell functions apart? Prints the figures that say so.

    .venv-dev/bin/python bench/actbench_discrimination.py [--table act-bench-fashion-mlp3]
        [--seeds 10] [--store BUILD/NAME.json.gz.work.sqlite]

A table separates functions when a function's seed-to-seed noise is well below the gaps
between the functions it ranks. This trains the search's eight baselines with ``--seeds``
seeds (in one stack per seed, as the build trains) and prints each one's mean and
standard deviation of validation accuracy; then the spread of the table's top 100 classes
(the best minus the 100th, and their standard deviation); and, given the build's work
store, the median over the top 100 classes of their own three seeds' standard deviation.
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict

from actbench import load_table
from actbench.card import card_path, read_card
from actbench.shipped import DATA, SHIPPED
from actbench.stacked_training import train_many
from actbench.workstore import WorkStore
from actsearch.features import BASELINES


def baseline_noise(task: str, seeds: int) -> None:
    runs = defaultdict(list)
    for seed in range(seeds):
        for result in train_many(task, list(BASELINES), seed):
            runs[result.activation].append(100 * result.val_accuracy)
    print(f"{task}, {seeds} seeds: validation accuracy (points)")
    for name, values in runs.items():
        print(f"  {name:12s} mean {statistics.mean(values):6.2f}  "
              f"std {statistics.stdev(values):.2f}  range {max(values) - min(values):.2f}")


def top_spread(table, count: int = 100) -> list[str]:
    ranked = sorted((n for n in table if not table.failed(n)),
                    key=lambda n: table[n].val_accuracy, reverse=True)[:count]  # fmt: skip
    values = [100 * table[n].val_accuracy for n in ranked]
    print(f"top {count} classes (medians of 3 seeds): best {values[0]:.2f}, "
          f"{count}th {values[-1]:.2f}, spread {values[0] - values[-1]:.2f} points, "
          f"std {statistics.stdev(values):.2f}")
    return ranked


def store_noise(path: str, ranked: list[str]) -> None:
    seeds = defaultdict(list)
    for unit in WorkStore(path, WorkStore.settings_of(path)).results():
        if unit.key.kind == "train" and unit.key.function in ranked:
            seeds[unit.key.function].append(100 * unit.record.val_accuracy)
    stds = [statistics.stdev(v) for v in seeds.values() if len(v) > 1]
    print(f"the top {len(ranked)} classes' own 3-seed std: median {statistics.median(stds):.2f}, "
          f"90th percentile {sorted(stds)[int(0.9 * len(stds))]:.2f} points")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", choices=sorted(SHIPPED), default="act-bench-fashion-mlp3")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--store", help="the build's work store (NAME.json.gz.work.sqlite)")
    args = parser.parse_args()
    card = read_card(card_path(DATA / SHIPPED[args.table].file))
    print(f"{args.table}: task {card.task}, splits {card.splits}")
    ranked = top_spread(load_table(args.table))
    if args.store:
        store_noise(args.store, ranked)
    baseline_noise(card.task, args.seeds)


if __name__ == "__main__":
    main()
