"""Accuracy distribution of an Act-Bench table, as a PNG (matplotlib, Agg).

    python bench/actbench_build_figure.py act-bench-digits-mlp docs/act-bench-digits-mlp.png
    python bench/actbench_build_figure.py --running BUILD/act-bench-digits-mlp.json.gz \\
        docs/act-bench-digits-mlp-partial.png   # a build still under way (its work store)

The histogram counts unique functions (equivalence classes) by median validation
accuracy; failed functions (chance accuracy or non-finite loss) are drawn apart, ReLU's
class and the best function are marked.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from actbench.tables import Table, load_table
from actcore.readable import readable

RELU = "max(relu(x),zero(x))"


def plot(table: Table, title: str, path: str) -> dict:
    failed = [n for n in table if table.failed(n)]
    ok = np.array([table[n].val_accuracy for n in table if not table.failed(n)])
    best = table.best("val_accuracy")
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    bins = np.linspace(0, 1, 51)
    ax.hist(ok, bins=bins, color="tab:blue", label=f"trained ({len(ok)})")
    ax.bar(table.chance, len(failed), width=0.02, color="tab:red",
           label=f"failed, at chance ({len(failed)})")  # fmt: skip
    ax.set_yscale("log")
    marks = {"best": (best, "tab:green")}
    if RELU in table:
        marks["ReLU"] = (RELU, "black")
    for label, (name, color) in marks.items():
        acc = table[name].val_accuracy
        ax.axvline(acc, color=color, ls="--", lw=1,
                   label=f"{label}: {readable(table.canonical(name))} {100 * acc:.1f}%")
    ax.set_xlabel("median validation accuracy (3 seeds)")
    ax.set_ylabel("unique functions (log)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    relu = table[RELU].val_accuracy if RELU in table else math.nan
    rank = 1 + sum(table[n].val_accuracy > relu for n in table)
    return {"rows": len(table), "failed": len(failed), "best": best,
            "best_val": table[best].val_accuracy, "relu_val": relu, "relu_rank": rank}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", help="table file or registered name (or --running OUT)")
    parser.add_argument("png")
    parser.add_argument("--running", action="store_true",
                        help="TABLE is the --out of a build under way: plot its finished rows")
    args = parser.parse_args()
    if args.running:
        from actbench.build import snapshot

        build = snapshot(args.table)
        table = Table(build.rows, source=args.table)
        title = (f"{build.config.task}, {build.config.schemas[0]}: {len(build.rows)} of "
                 f"{build.plan.classes} classes so far")  # fmt: skip
    else:
        table = load_table(args.table)
        name = Path(args.table).name.removesuffix(".gz").removesuffix(".json")
        title = f"{name}: {len(table)} unique functions"
    print(plot(table, title, args.png))


if __name__ == "__main__":
    main()
