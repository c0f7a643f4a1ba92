"""Learning curves: a comparison read after any epoch, and drawn against a reference.

Every run records its validation and test figures after each epoch
(:attr:`actbench.Result.history`). Because a recipe's schedule depends on the update count
alone, epoch ``n`` of a long run is exactly a run of ``n`` epochs, so one grid answers every
training length: :func:`figures_at` reads a run as it stood after epoch ``n``, and
:func:`plot_curves` draws each activation's median curve over seeds against a reference's.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence

import numpy as np

from actbench.results import Result
from actcore import ActError
from actcore.plot import save_figure


def figures_at(result: Result, epoch: int | None) -> tuple[float, float, bool]:
    """``result``'s validation and test accuracy after ``epoch`` (None: its final ones),
    and whether the run had failed by then (a failed run scores chance from the epoch
    it failed in)."""
    if epoch is None:
        return result.val_accuracy, result.test_accuracy, result.status == "failed"
    if epoch < 1:
        raise ActError(f"the epoch to read must be 1 or more, got {epoch}")
    if result.status == "failed" and result.epochs <= epoch:
        return result.val_accuracy, result.test_accuracy, True
    if result.status == "ok" and epoch > result.epochs:
        raise ActError(f"{result.activation} seed {result.seed} trained {result.epochs} "
                       f"epochs: it has no figures after epoch {epoch}")
    point = next((h for h in result.history if h.epoch == epoch), None)
    if point is None:
        raise ActError(f"{result.activation} seed {result.seed} has no learning curve (saved "
                       "before act recorded curves, or trained with curves=False): only its "
                       "final figures can be read")
    return point.val_accuracy, point.test_accuracy, False


def median_curves(results: Sequence[Result]) -> dict[str, list[tuple[float, float, float]]]:
    """Per activation, its validation accuracy after each epoch that every seed reached:
    ``(median, min, max)`` over seeds. Runs without curves are left out; a failed run
    counts at chance from the epoch it failed in."""
    groups: dict[str, list[Result]] = {}
    for r in results:
        if r.history or r.status == "failed":
            groups.setdefault(r.activation, []).append(r)
    curves = {}
    for activation, runs in groups.items():
        epochs = min(r.epochs if r.status == "ok" else max(r.epochs, len(r.history))
                     for r in runs)  # fmt: skip
        points = []
        for epoch in range(1, epochs + 1):
            values = [figures_at(r, epoch)[0] for r in runs]
            points.append((statistics.median(values), min(values), max(values)))
        if points:
            curves[activation] = points
    return curves


def crossings(curve: Sequence[float], reference: Sequence[float], hold: int = 1) -> list[int]:
    """The epochs (1-based) after which ``curve`` is on the other side of ``reference`` than
    it was before: where it overtakes it, or falls behind. A side counts once the curve
    has kept it ``hold`` epochs in a row, and a crossing is marked at the first of them, so
    noise around a tie marks nothing. Ties carry the last side. Before any side is held,
    the curve is on the side it spent most epochs on, if ``hold`` or more: one that trails
    noisily, never ``hold`` epochs in a row, and then leads for good is marked too."""
    if hold < 1:
        raise ActError(f"a side must be held at least 1 epoch, got {hold}")
    marks, sides, held, side, start, length = [], [], 0, 0, 0, 0
    for epoch, (a, b) in enumerate(zip(curve, reference), start=1):
        now = (int(a > b) - int(a < b)) or side
        sides.append(now)
        if not now:
            continue
        if now == side:
            length += 1
        else:
            side, start, length = now, epoch, 1
        if length == hold and side != held:
            other = sides[: start - 1].count(-side)
            if held or (other > sides[: start - 1].count(side) and other >= hold):
                marks.append(start)
            held = side
    return marks


def hold_for(epochs: int) -> int:
    """How many epochs a curve must stay on a side of the reference for a crossing to be
    drawn: a tenth of the training. Single epochs of one run swing by points, so curves
    near a tie cross back and forth; a tenth of the training on one side is a lead."""
    return max(1, epochs // 10)


def plot_curves(results: Sequence[Result], path: str | os.PathLike[str],
                reference: str = "relu(x)", title: str = "") -> None:
    """One panel per activation: its median validation accuracy over seeds against epochs,
    a band from the seeds' minimum to their maximum, ``reference``'s median curve in grey,
    and a mark at each epoch where the two cross for :func:`hold_for` epochs or more."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = median_curves(results)
    if not curves:
        raise ActError("no run has a learning curve to draw (results saved before act "
                       "recorded curves, or trained with curves=False)")
    base = [m for m, _, _ in curves[reference]] if reference in curves else None
    hold = hold_for(max(len(c) for c in curves.values()))
    names = list(curves)
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig, grid = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.9 * rows + 0.9), squeeze=False,
                             sharex=True, sharey=True)  # fmt: skip
    for ax in grid.flatten()[len(names):]:
        ax.set_visible(False)
    # the y range leaves out the first epochs' climb, so the ends of the curves can be told
    # apart; it holds every median from a fifth of the way in
    lows = [m for c in curves.values() for m, _, _ in c[len(c) // 5:]]
    highs = [hi for c in curves.values() for _, _, hi in c]
    for ax, name in zip(grid.flatten(), names, strict=False):
        median, low, high = 100 * np.array(curves[name]).T  # (3, epochs), in %
        epochs = range(1, len(median) + 1)
        ax.fill_between(epochs, low, high, color="C0", alpha=0.25, linewidth=0,
                        label="seeds' min–max")
        ax.plot(epochs, median, color="C0", linewidth=1.3, label="median")
        if base is not None and name != reference:
            ref = 100 * np.array(base[: len(median)])
            ax.plot(range(1, len(ref) + 1), ref, color="0.35", linewidth=1, linestyle="--",
                    label=f"{reference} median")
            for epoch in crossings(median, ref, hold):
                ax.axvline(epoch, color="C3", linewidth=0.8, alpha=0.5)
                ax.plot(epoch, median[epoch - 1], "o", color="C3", markersize=3.5)
        ax.set_title(_short(name), fontsize=9)
        ax.grid(alpha=0.3)
    ax = grid.flatten()[0]
    ax.set_ylim(100 * min(lows) - 0.5, 100 * max(highs) + 0.3)
    for row in grid:
        row[0].set_ylabel("validation accuracy (%)")
    for ax in grid[-1]:
        ax.set_xlabel("epoch")
    other = next((i for i, name in enumerate(names) if name != reference), 0)
    handles, labels = grid.flatten()[other].get_legend_handles_labels()
    handles.append(plt.Line2D([], [], color="C3", marker="o", markersize=3.5, linewidth=0.8))
    labels.append(f"crosses {reference}" + (f" (and stays {hold}+ epochs)" if hold > 1 else ""))
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle(title or "validation accuracy by epoch: median over seeds, band min–max")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    save_figure(fig, path, dpi=110)


def _short(activation: str) -> str:
    """``convex_n(identity(x),relu(x))`` -> ``conv{id, relu}``; other names as they are."""
    for kind, short in (("convex_n(", "conv"), ("affine_n(", "aff")):
        if activation.startswith(kind):
            inner = activation[len(kind):-1]
            bases = [b.removesuffix("(x)").replace("identity", "id") for b in inner.split(",")]
            return f"{short}{{{', '.join(bases)}}}"
    return activation
