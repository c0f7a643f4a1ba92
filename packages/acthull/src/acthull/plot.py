"""Matplotlib plumbing shared by the plots: Agg backend, subplot grids, atomic PNG writes."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from actcore.plot import save_figure as actcore_save_figure


def subplots(count: int, width: float = 3.6, height: float = 2.9) -> tuple[Figure, list[Axes]]:
    """A near-square grid of ``count`` axes (unused cells hidden)."""
    cols = min(count, math.ceil(math.sqrt(count)))
    rows = math.ceil(count / cols)
    fig, grid = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    axes = list(grid.flat)
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, axes[:count]


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Lay out ``fig`` and save it (:func:`actcore.plot.save_figure`)."""
    fig.tight_layout()
    return actcore_save_figure(fig, path, dpi=110)
