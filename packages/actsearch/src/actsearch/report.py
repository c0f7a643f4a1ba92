"""A live search's report: leaderboard CSV, best-so-far curve with the baselines, top
functions plotted, and the map of the whole space by predicted accuracy."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from actbench.results import Result
from actcore.atomic import atomic_path
from actcore.readable import readable
from actsearch.features import BASELINES
from actsearch.strategies import SearchState, predicted_accuracy
from actsearch.study import Evaluation


def write_csv(path: Path, header: Sequence[str], rows) -> Path:
    """Write a CSV atomically."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def ranking_accuracy(run: Evaluation | Result) -> float:
    """Validation accuracy for ranking; a value that is not a number ranks last."""
    return run.val_accuracy if math.isfinite(run.val_accuracy) else 0.0


def write_report(evaluations: list[Evaluation], out: Path, title: str, top: int = 5,
                 baselines: Sequence[str] = BASELINES) -> Path:
    """Leaderboard CSV, best-so-far curve and plots of the top functions in ``out``."""
    from actsearch import plot

    ranked = sorted(evaluations, key=lambda e: -ranking_accuracy(e))
    write_csv(out / "leaderboard.csv",
              ["rank", "function", "readable", "val_accuracy", "test_accuracy", "status",
               "seconds", "order"],
              ([i + 1, e.function, readable(e.function), e.val_accuracy, e.test_accuracy,
                e.status, round(e.seconds, 3), e.order] for i, e in enumerate(ranked)))
    if evaluations:
        marked = {i: e.function for i, e in enumerate(evaluations) if e.function in baselines}
        plot.plot_best_so_far([ranking_accuracy(e) for e in evaluations],
                              out / "best_so_far.png", title, marked)
        plot.plot_functions([e.function for e in ranked[:top]], out / "top_functions.png",
                             f"top {min(top, len(ranked))}: {title}")
    return out


def write_search_map(state: SearchState, names: list[str], evaluations: list[Evaluation],
                     out: Path, title: str, baselines: Sequence[str] = BASELINES) -> Path:
    """``search_map.png``: every candidate where the embedding puts it, coloured by the
    regressor's prediction from all evaluations, the evaluations on top in order."""
    from actsearch import plot

    row_of = {n: i for i, n in enumerate(names)}
    rows = [row_of[e.function] for e in evaluations]
    labels = {n.removesuffix("(x)"): row_of[n] for n in baselines if n in row_of}
    if evaluations:
        best = max(evaluations, key=ranking_accuracy)
        labels[f"best: {readable(best.function)}"] = row_of[best.function]
    return plot.plot_search_map(state.coords, predicted_accuracy(state), rows, labels,
                                out / "search_map.png", title)


def top_lines(evaluations: list[Evaluation], top: int = 5) -> list[str]:
    """The best functions as a person writes them (and as the space names them)."""
    ranked = sorted(evaluations, key=lambda e: -ranking_accuracy(e))
    lines = []
    for e in ranked[:top]:
        shown = readable(e.function)
        lines.append(f"  {e.val_accuracy:.4f}  {shown}"
                     + (f"  (as {e.function})" if shown != e.function else ""))
    return lines
