"""Pictures of activation functions, and the one way act saves a figure (matplotlib,
Agg backend)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from actcore.atomic import atomic_path
from actcore.errors import ActError
from actcore.evaluate import evaluate
from actcore.expr import Expr, parse

Y_LIMIT = 10.0  # fast-growing functions would otherwise flatten everything else
FIGURE_FORMATS = (".png", ".pdf", ".svg")


def figure_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a figure file: its suffix names a format act draws in, else an error.
    Commands use it as the ``type`` of their figure options too, so a bad name fails
    before any work (an ActError raised there passes argparse by: one line, exit 2)."""
    path = Path(path)
    if path.suffix.lower() not in FIGURE_FORMATS:
        raise ActError(f"cannot draw {str(path)!r}: a figure file ends in "
                       f"{', '.join(FIGURE_FORMATS)}")
    return path


def save_figure(fig, path: str | os.PathLike[str], **savefig) -> Path:
    """Write ``fig`` atomically in the format its suffix names, then close it.

    Every act command that draws saves through here, so ``-o f.txt`` is refused (not
    PNG bytes in a text file), missing folders are created, and a killed run never leaves
    half a picture.
    """
    import matplotlib.pyplot as plt

    try:
        path = figure_path(path)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lower()[1:], **savefig)
    finally:
        plt.close(fig)
    return path


def plot_functions(
    functions: Sequence[str | Expr], path: str | os.PathLike, lo: float = -5.0, hi: float = 5.0,
    normalize: bool = False,
) -> Path:
    """Draw the functions on [lo, hi] in one figure and write it atomically as PNG;
    ``normalize`` draws (f - mean) / std under x ~ N(0, 1) instead of f."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exprs = [parse(f) for f in functions]
    if not exprs:
        raise ActError("nothing to plot: give at least one function")
    path = Path(path)
    x = torch.linspace(lo, hi, 1001)
    y = evaluate(exprs, x).numpy()
    if normalize:
        from actcore.normalize import normalization

        for i, expr in enumerate(exprs):
            mean, std = normalization(expr)
            y[i] = (y[i] - mean) / std
    finite = y[np.isfinite(y)]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for expr, row in zip(exprs, y):
        ax.plot(x.numpy(), row, label=str(expr), linewidth=1.5)
    if finite.size:
        bottom = max(float(finite.min()), -Y_LIMIT)
        top = min(float(finite.max()), Y_LIMIT)
        margin = 0.05 * max(top - bottom, 1e-3)
        ax.set_ylim(bottom - margin, top + margin)
    ax.axhline(0, color="0.7", linewidth=0.8, zorder=0)
    ax.axvline(0, color="0.7", linewidth=0.8, zorder=0)
    ax.set_xlabel("x")
    ax.set_title("activation functions" + (", normalised: mean 0, variance 1 under N(0,1)"
                                           if normalize else ""))
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return save_figure(fig, path)
