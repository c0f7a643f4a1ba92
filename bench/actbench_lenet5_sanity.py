"""act's LeNet-5 ReLU curves against the independent plain-PyTorch reference's.

Reads act's ReLU runs from a ``bench compare`` results file and the reference's runs
(``bench/actbench_lenet5_reference.py --out FILE``, one JSON-lines file per seed), grouped
by the shifts they trained with (torchvision's, or act's with ``--shifts crop``); prints,
for act against each group, validation and test accuracy at chosen epochs (median and
range over seeds) and each run's ten-epoch medians, and draws every side's validation
curve with its seeds' band. A gap counts as beyond seed noise where the two sides' seed
ranges (two seeds or more each) do not overlap.

``--augmentation-check STATE`` measures what the two implementations' augmentations do to
one model (the reference's saved state, ``FILE.pt``): its mean loss on act's 54,000
training images without augmentation, with act's shifts (an offset drawn uniformly from
the integers −3..3) and with torchvision's ``RandomAffine`` shifts (a uniform draw on
[−3, 3], rounded: ±3 half as often), flips in both.

    .venv-dev/bin/python bench/actbench_lenet5_sanity.py \
        --results packages/actbench/docs/lenet5-fashion-mnist-hulls-100.jsonl \
        --reference packages/actbench/docs/lenet5-fashion-mnist-reference/*seed*.jsonl \
        --plot docs/lenet5-relu-against-reference.png
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

from actbench.augment import flip_and_shift
from actbench.compare import load_results


def act_curves(path: Path) -> dict[int, dict[str, list[float]]]:
    """act's ReLU runs: per seed, validation and test accuracy (%) and training loss."""
    return {r.seed: {"val": [100 * h.val_accuracy for h in r.history],
                     "test": [100 * h.test_accuracy for h in r.history],
                     "loss": [h.train_loss for h in r.history]}
            for r in load_results(path) if r.activation == "relu(x)" and r.history}


REFERENCE_SIDES = {"affine": "reference (plain PyTorch)",
                   "crop": "reference with act's shifts"}


def reference_curves(paths: list[Path]) -> dict[str, dict[int, dict[str, list[float]]]]:
    """The reference's runs, from its per-epoch JSON lines, by side (the shifts they
    trained with; files from before ``--shifts`` existed used torchvision's)."""
    sides: dict[str, dict[int, dict[str, list[float]]]] = {}
    for path in paths:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line]
        if lines:
            side = REFERENCE_SIDES[lines[0].get("shifts", "affine")]
            sides.setdefault(side, {})[lines[0]["seed"]] = {
                "val": [e["val_accuracy"] for e in lines],
                "test": [e["test_accuracy"] for e in lines],
                "loss": [e["train_loss"] for e in lines]}
    return {side: sides[side] for side in REFERENCE_SIDES.values() if side in sides}


def at(runs: dict, key: str, epoch: int) -> list[float]:
    return [run[key][epoch - 1] for run in runs.values() if len(run[key]) >= epoch]


SMOOTHING = 10  # epochs a window median spans: single epochs swing by up to 3 points


def window_median(values: list[float], start: int) -> float:
    """The median of the ``SMOOTHING`` epochs from index ``start``."""
    return statistics.median(values[start : start + SMOOTHING])


def late_median(runs: dict, key: str, first: int) -> list[float]:
    """Each run's median over the window starting at epoch ``first`` (runs that reached
    its end)."""
    return [window_median(run[key], first - 1) for run in runs.values()
            if len(run[key]) >= first - 1 + SMOOTHING]


def torchvision_shifts(images, generator):
    """Flips, and the shifts torchvision's ``RandomAffine(0, (3/28, 3/28))`` draws for
    28x28 images: ``round(uniform(-3, 3))`` pixels each way, zero fill."""
    import torch
    import torch.nn.functional as F

    n, c, h, w = images.shape
    flip = torch.rand(n, generator=generator) < 0.5
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    dy, dx = ((torch.rand(n, generator=generator) * 6 - 3).round().long() + 3 for _ in "yx")
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    padded = F.pad(images, (3,) * 4)
    return padded[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None],
                  rows, cols]


def augmentation_check(state_path: Path) -> None:
    """The loss of one model under no augmentation, act's and torchvision's."""
    import sys

    import torch
    import torch.nn.functional as F

    from actbench.hookspecs import DATASETS
    from actcore.plugins import registry

    sys.path.insert(0, str(Path(__file__).parent))
    from actbench_lenet5_reference import lenet5

    data = registry(DATASETS).get("fashion-mnist").load("train", None, False, augment=False)
    x, y = data.x.float().div(255.0), data.y
    state = torch.load(state_path, weights_only=True)
    model = lenet5()
    model.load_state_dict(state["model"])
    model.eval()

    @torch.no_grad()
    def loss(augment, repeats: int = 3) -> float:
        generator, total = torch.Generator().manual_seed(1), 0.0
        for _ in range(repeats):
            for i in range(0, len(y), 2000):
                batch = x[i : i + 2000]
                batch = augment(batch, generator) if augment else batch
                total += F.cross_entropy(model(batch), y[i : i + 2000], reduction="sum").item()
        return total / (repeats * len(y))

    print(f"the reference's model after epoch {state['epoch']}, mean loss on the "
          f"{len(y):,} training images: no augmentation {loss(None, 1):.4f}; act's shifts "
          f"{loss(lambda b, g: flip_and_shift(b, 3, g)):.4f}; torchvision's shifts "
          f"{loss(torchvision_shifts):.4f}")


def running_median(values: list[float]) -> list[float]:
    """The median of each full window of ``SMOOTHING`` epochs, sliding by one: a gap of
    half a point hides in single epochs' swings."""
    return [window_median(values, i) for i in range(len(values) - SMOOTHING + 1)]


def plot(sides: dict[str, dict], path: Path) -> None:
    """Validation accuracy (each run's ten-epoch running median) and training loss, each
    side's median over its seeds with the seeds' range as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for (label, runs), color in zip(sides.items(), ("tab:blue", "tab:orange", "tab:green")):
        for ax, key in zip(axes, ("val", "loss")):
            length = min(len(run[key]) for run in runs.values())
            smooth = running_median if key == "val" else list
            values = np.array([smooth(run[key][:length]) for run in runs.values()])
            first = 1 + (SMOOTHING - 1) / 2 if key == "val" else 1  # a window's middle
            epochs = first + np.arange(values.shape[1])
            ax.plot(epochs, np.median(values, 0), color=color,
                    label=f"{label}, median of {len(values)} seed{'s' * (len(values) > 1)}")
            ax.fill_between(epochs, values.min(0), values.max(0), color=color, alpha=0.2,
                            linewidth=0)
    axes[0].set(xlabel="epoch", ylabel="validation accuracy (%)", ylim=(84, 91),
                title="validation accuracy, ten-epoch running median\n(band: the seeds' range)")
    axes[1].set(xlabel="epoch", ylabel="mean training loss (augmented images)",
                ylim=(0.28, 0.42), title="training loss\n(band: the seeds' range)")
    for ax in axes:
        ax.set_xlim(0, 101)
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
    parser.add_argument("--augmentation-check", type=Path, metavar="STATE")
    args = parser.parse_args()
    act, references = act_curves(args.results), reference_curves(args.reference)
    print(f"act seeds {sorted(act)}")
    for side, reference in references.items():
        compare(act, side, reference, args.epochs)
    if args.plot:
        plot({"act": act, **references}, args.plot)
        print(f"wrote {args.plot}")
    if args.augmentation_check:
        augmentation_check(args.augmentation_check)


def compare(act: dict, side: str, reference: dict, epochs: list[int]) -> None:
    """act against one reference side: chosen epochs, then ten-epoch medians per run."""
    print(f"\nact against the {side}, seeds {sorted(reference)}")
    print("epoch | split | act median [range] | reference median [range] | apart")
    for epoch in epochs:
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
    print("each run's median over ten epochs (a single epoch swings by up to 3 points):")
    for first in range(1, 101, SMOOTHING):
        for key in ("val", "test", "loss"):
            a, r = late_median(act, key, first), late_median(reference, key, first)
            if a and r:
                print(f"epochs {first:3d}-{first + SMOOTHING - 1:3d} {key:4s}: act "
                      f"{', '.join(f'{v:.3f}' for v in a)}; reference "
                      f"{', '.join(f'{v:.3f}' for v in r)}")


if __name__ == "__main__":
    main()
