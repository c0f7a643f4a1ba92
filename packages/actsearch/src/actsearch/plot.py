"""Figures: replay curves with confidence bands, embeddings, best-so-far of a live search.

Everything is drawn with matplotlib's Agg backend and saved as PNG (atomically).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from actcore.plot import save_figure


def _figure(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save(fig, path: Path) -> Path:
    """Save ``fig`` tightly cropped (:func:`actcore.plot.save_figure`)."""
    return save_figure(fig, path, dpi=120, bbox_inches="tight")


def mean_ci(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over rows and the half-width of its 95% t confidence interval."""
    from scipy.stats import t

    n = curves.shape[0]
    mean = curves.mean(axis=0)
    if n < 2:
        return mean, np.zeros_like(mean)
    sem = curves.std(axis=0, ddof=1) / np.sqrt(n)
    return mean, t.ppf(0.975, n - 1) * sem


def plot_replay(
    curves: Mapping[str, np.ndarray], spearman: Mapping[str, np.ndarray], path: Path,
    relu: float, best: float, title: str, panels: Mapping[str, Sequence[str]] | None = None,
) -> Path:
    """Mean best-so-far per evaluation with 95% bands, one line per algorithm, in one panel
    per entry of ``panels`` (a feature set and the labels it shows, e.g. ``{"union":
    ["KNR (union)", "RFR (union)", "random"]}``; default: every label in one panel), as
    the AQuaSurF paper draws its replays. Last panel: the surrogates' mean Spearman
    correlation of predicted with true accuracy, line style by panel."""
    panels = panels or {"": list(curves)}
    fig, axes = _figure(1, len(panels) + 1, figsize=(5 * len(panels) + 5, 4.5), squeeze=False,
                        width_ratios=(3,) * len(panels) + (2,))
    *best_axes, rho_ax = axes[0]
    colors, styles = _line_colors(curves), ["-", "--", ":", "-."]
    for ax, (panel, labels) in zip(best_axes, panels.items()):
        for label in labels:
            mean, half = mean_ci(curves[label])
            x = np.arange(1, len(mean) + 1)
            ax.plot(x, mean, color=colors[label], label=f"{label} (n={len(curves[label])})")
            ax.fill_between(x, mean - half, mean + half, color=colors[label], alpha=0.2)
        if np.isfinite(relu):
            ax.axhline(relu, color="grey", linestyle="--", linewidth=1, label="ReLU")
        ax.axhline(best, color="black", linestyle=":", linewidth=1, label="table best")
        ax.set_xlabel("evaluations")
        ax.set_title(f"{panel} features" if panel else "best function found so far")
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(alpha=0.3)
    best_axes[0].set_ylabel("best validation accuracy so far")
    if len(panels) > 1:
        _share_limits(best_axes)
    fig.suptitle(title)  # above the panels' own titles, however long
    for style, labels in zip(styles * len(panels), panels.values()):
        for label in labels:
            rho = spearman.get(label)
            if rho is None or not np.isfinite(rho).any():
                continue
            steps = np.isfinite(rho).any(axis=0)
            x = np.arange(1, rho.shape[1] + 1)[steps]
            rho_ax.plot(x, np.nanmean(rho[:, steps], axis=0), color=colors[label],
                        linestyle=style, label=label)
    rho_ax.axhline(0, color="black", linewidth=0.5)
    rho_ax.set_xlabel("evaluations")
    rho_ax.set_ylabel("Spearman (predicted vs true, unevaluated)")
    rho_ax.set_title("surrogate prediction quality")
    rho_ax.grid(alpha=0.3)
    if rho_ax.get_legend_handles_labels()[0]:
        rho_ax.legend(fontsize=8)
    return save(fig, path)


def _line_colors(curves: Mapping[str, np.ndarray]) -> dict[str, str]:
    """One colour per algorithm name (the label before its feature set), so a regressor
    keeps its colour in every panel."""
    names = list(dict.fromkeys(label.split(" (")[0] for label in curves))
    return {label: f"C{names.index(label.split(' (')[0]) % 10}" for label in curves}


def _share_limits(axes) -> None:
    low = min(ax.get_ylim()[0] for ax in axes)
    high = max(ax.get_ylim()[1] for ax in axes)
    for ax in axes:
        ax.set_ylim(low, high)


def plot_embeddings(
    panels: Mapping[str, np.ndarray], accuracy: np.ndarray, failed: np.ndarray,
    labels: Mapping[str, int], path: Path, title: str, bands: int = 10,
) -> Path:
    """Scatter each 2-D embedding coloured by accuracy, well-known functions labelled.

    ``panels`` maps a feature-set name to the candidates' coordinates, ``accuracy`` and
    ``failed`` are the candidates' validation accuracy and failure flag, and ``labels``
    maps a function name to its candidate index. Failed functions are grey; the others
    are coloured in ``bands`` bands of equal count (deciles), not on a linear scale,
    because most working functions sit within a few points of the best and a linear
    scale from chance paints them all one colour.
    """
    import matplotlib as mpl

    working = accuracy[~failed]
    edges = np.unique(np.quantile(working, np.linspace(0, 1, bands + 1))) \
        if len(working) else np.array([0.0, 1.0])  # fmt: skip
    cmap = mpl.colormaps["viridis"].resampled(max(len(edges) - 1, 1))
    norm = mpl.colors.BoundaryNorm(edges, cmap.N) if len(edges) > 1 else None
    order = np.flatnonzero(~failed)[np.argsort(working, kind="stable")]  # best on top
    fig, axes = _figure(1, len(panels), figsize=(5 * len(panels), 4.6), squeeze=False)
    for ax, (name, coords) in zip(axes[0], panels.items()):
        ax.scatter(coords[failed, 0], coords[failed, 1], s=3, color="0.82",
                   label=f"failed ({int(failed.sum())})")
        points = ax.scatter(coords[order, 0], coords[order, 1], c=accuracy[order], s=4,
                            cmap=cmap, norm=norm)
        for fn, i in labels.items():
            ax.plot(*coords[i], "r.", markersize=6)
            ax.annotate(fn.removesuffix("(x)"), coords[i], fontsize=8, color="red",
                        xytext=(3, 3), textcoords="offset points")
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(loc="lower left", fontsize=7, markerscale=3, frameon=False)
        bar = fig.colorbar(points, ax=ax, format="%.3f")
        bar.set_label("validation accuracy (deciles of the working functions)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    fig.suptitle(title)
    return save(fig, path)


def plot_best_so_far(values: Sequence[float], path: Path, title: str,
                     marked: Mapping[int, str] | None = None) -> Path:
    """A live search's accuracy per evaluation (points) and the best so far (line);
    ``marked`` maps evaluation indices to names drawn as labelled diamonds (the
    baselines), with the best of them as a dashed line."""
    fig, ax = _figure(figsize=(8, 4.5))
    values = np.asarray(values, float)
    x = np.arange(1, len(values) + 1)
    ax.plot(x, values, ".", color="grey", label="evaluated")
    ax.plot(x, np.fmax.accumulate(values), color="C0", label="best so far")
    marked = {i: n for i, n in (marked or {}).items() if i < len(values)}
    if marked:
        rows = np.array(sorted(marked))
        ax.plot(x[rows], values[rows], "D", color="C1", markersize=5, label="baselines")
        ax.axhline(np.nanmax(values[rows]), color="C1", linestyle="--", linewidth=1,
                   label="best baseline")
        ranked = sorted(rows, key=lambda i: -np.nan_to_num(values[i], nan=-1))
        listing = "\n".join(f"{marked[i].removesuffix('(x)'):<9} {values[i]:.4f}"
                             for i in ranked)
        ax.text(0.5, 0.04, f"baselines\n{listing}", transform=ax.transAxes, fontsize=7,
                family="monospace", color="C1", va="bottom", ha="center",
                bbox=dict(boxstyle="round", fc="white", ec="C1", alpha=0.9))
    finite = values[np.isfinite(values)]
    if len(finite):  # failed runs sit at the bottom; keep the contest (and baselines) readable
        top = finite.max()
        low = max(finite.min(), top - 4 * (top - np.median(finite)))
        if marked:
            low = min(low, np.nanmin(values[rows]))
        ax.set_ylim(low - 0.02, top + 0.01)
    ax.set_xlabel("evaluations (in completion order)")
    ax.set_ylabel("validation accuracy")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return save(fig, path)


def plot_search_map(coords: np.ndarray, predicted: np.ndarray, evaluated: Sequence[int],
                    labels: Mapping[str, int], path: Path, title: str) -> Path:
    """The whole space's 2-D embedding coloured by the surrogate's predicted accuracy,
    with the evaluated rows on top, coloured by evaluation order; ``labels`` names rows
    (the baselines and the best function)."""
    fig, ax = _figure(figsize=(9, 7))
    shown = np.isfinite(coords).all(1)
    order = np.flatnonzero(shown)[np.argsort(np.nan_to_num(predicted[shown], nan=-np.inf))]
    size = float(np.clip(20_000 / max(len(order), 1), 0.5, 25))
    background = ax.scatter(coords[order, 0], coords[order, 1], c=predicted[order], s=size,
                            cmap="viridis", linewidths=0, rasterized=True)
    fig.colorbar(background, ax=ax, label="predicted validation accuracy", shrink=0.8)
    evaluated = [r for r in evaluated if shown[r]]
    if evaluated:
        steps = ax.scatter(coords[evaluated, 0], coords[evaluated, 1],
                           c=np.arange(1, len(evaluated) + 1), cmap="autumn", s=28,
                           edgecolors="black", linewidths=0.6, zorder=3)
        fig.colorbar(steps, ax=ax, label="evaluation number", shrink=0.8)
    for name, row in labels.items():
        if shown[row]:
            ax.annotate(name, coords[row], fontsize=8, xytext=(5, 5),
                        textcoords="offset points", zorder=4,
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", alpha=0.7, lw=0))
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    return save(fig, path)


def plot_functions(names: Sequence[str], path: Path, title: str) -> Path:
    """Plot the top functions on [-5, 5]."""
    import torch

    import actcore
    from actcore.readable import readable

    fig, ax = _figure(figsize=(7, 4.5))
    x = torch.linspace(-5, 5, 401)
    with torch.no_grad():
        for name in names:
            y = actcore.to_module(name)(x)
            ax.plot(x.numpy(), y.numpy(), label=readable(name))
    ax.set_ylim(-5, 5)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.axvline(0, color="black", linewidth=0.5)
    ax.legend(fontsize=7)
    ax.set_title(title)
    return save(fig, path)
