"""act's LeNet-5 ReLU curves against the independent plain-PyTorch reference's.

Reads act's ReLU runs from a ``bench compare`` results file and the reference's runs
(``bench/actbench_lenet5_reference.py --out FILE``, one JSON-lines file per seed), prints
validation and test accuracy at chosen epochs (median and range over seeds) and draws both
validation curves, each with its seeds' band. A gap counts as beyond seed noise where the
two sides' seed ranges (two seeds or more each) do not overlap.

    .venv-dev/bin/python bench/actbench_lenet5_sanity.py \
        --results packages/actbench/docs/lenet5-fashion-mnist-hulls-100.jsonl \
        --reference packages/actbench/docs/lenet5-fashion-mnist-reference/seed*.jsonl \
        --plot docs/lenet5-relu-against-reference.png
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

from actbench.compare import load_results


def act_curves(path: Path) -> dict[int, dict[str, list[float]]]:
    """act's ReLU runs: per seed, validation and test accuracy (%) and training loss."""
    return {r.seed: {"val": [100 * h.val_accuracy for h in r.history],
                     "test": [100 * h.test_accuracy for h in r.history],
                     "loss": [h.train_loss for h in r.history]}
            for r in load_results(path) if r.activation == "relu(x)" and r.history}


def reference_curves(paths: list[Path]) -> dict[int, dict[str, list[float]]]:
    """The reference's runs, from its per-epoch JSON lines."""
    runs = {}
    for path in paths:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line]
        if lines:
            runs[lines[0]["seed"]] = {"val": [e["val_accuracy"] for e in lines],
                                      "test": [e["test_accuracy"] for e in lines],
                                      "loss": [e["train_loss"] for e in lines]}
    return runs


def at(runs: dict, key: str, epoch: int) -> list[float]:
    return [run[key][epoch - 1] for run in runs.values() if len(run[key]) >= epoch]


def late_median(runs: dict, key: str, first: int, last: int) -> list[float]:
    """Each run's median over epochs ``first``..``last`` (runs that reached ``last``)."""
    return [statistics.median(run[key][first - 1 : last]) for run in runs.values()
            if len(run[key]) >= last]


def plot(act: dict, reference: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for (label, runs), color in zip((("act", act), ("reference (plain PyTorch)", reference)),
                                    ("tab:blue", "tab:orange")):
        for ax, key in zip(axes, ("val", "loss")):
            length = min(len(run[key]) for run in runs.values())
            values = np.array([run[key][:length] for run in runs.values()])
            epochs = np.arange(1, length + 1)
            ax.plot(epochs, np.median(values, 0), color=color,
                    label=f"{label}, median of {len(values)} seed{'s' * (len(values) > 1)}")
            ax.fill_between(epochs, values.min(0), values.max(0), color=color, alpha=0.2,
                            linewidth=0)
    axes[0].set(xlabel="epoch", ylabel="validation accuracy (%)", ylim=(80, 92),
                title="validation accuracy (band: the seeds' range)")
    axes[1].set(xlabel="epoch", ylabel="mean training loss (augmented images)",
                ylim=(0.2, 0.6), title="training loss")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right" if ax is axes[0] else "upper right")
    fig.suptitle("LeNet-5, ReLU, Fashion-MNIST, the hull paper's recipe: act against an "
                 "independent implementation")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--reference", type=Path, nargs="+", required=True)
    parser.add_argument("--epochs", type=int, nargs="+",
                        default=[1, 6, 12, 25, 36, 50, 60, 75, 100])
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    act, reference = act_curves(args.results), reference_curves(args.reference)
    print(f"act seeds {sorted(act)}, reference seeds {sorted(reference)}")
    print("epoch | split | act median [range] | reference median [range] | apart")
    for epoch in args.epochs:
        for key in ("val", "test"):
            a, r = at(act, key, epoch), at(reference, key, epoch)
            if not a or not r:
                continue
            verdict = "too few seeds to tell"
            if min(len(a), len(r)) >= 2:
                apart = min(a) > max(r) or max(a) < min(r)
                verdict = "beyond seed noise" if apart else "ranges overlap"
            print(f"{epoch:5d} | {key:5s} | {statistics.median(a):.2f} [{min(a):.2f}, "
                  f"{max(a):.2f}] | {statistics.median(r):.2f} [{min(r):.2f}, {max(r):.2f}] | "
                  f"{verdict}")
    for first, last in ((41, 70), (71, 100)):
        for key in ("val", "test", "loss"):
            a, r = late_median(act, key, first, last), late_median(reference, key, first, last)
            if a and r:
                print(f"median of epochs {first}-{last}, {key}: act "
                      f"{', '.join(f'{v:.3f}' for v in a)}; reference "
                      f"{', '.join(f'{v:.3f}' for v in r)}")
    if args.plot:
        plot(act, reference, args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
