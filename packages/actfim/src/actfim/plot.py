"""Pictures of spectra: per-layer log-eigenvalue histograms and CDFs (PNG, Agg)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from actcore.errors import ActError
from actcore.plot import save_figure
from actfim.features import LOG_RANGE, cdf_layout, layer_cdf
from actfim.spectrum import Spectrum

#: Up to this many layers get a legend; deeper models get a layer-by-depth heatmap.
LEGEND_LAYERS = 8


def plot_spectrum(spectrum: Spectrum, path: str | os.PathLike, title: str = "") -> Path:
    """Save a two-panel PNG of every layer's log-eigenvalues: their density and the binned
    CDF features. Deep models (more than 8 layers) get one heatmap row per layer, in call
    order, and depth as colour, in place of a legend. Both panels show the range the
    eigenvalues occupy, not the features' whole [-100, 100]."""
    if not spectrum.layers:
        raise ActError(f"nothing to plot: {spectrum.reason or 'the spectrum is empty'}")
    finite = [v[np.isfinite(v)] for v in (layer.log_eigenvalues.numpy()
                                           for layer in spectrum.layers)]
    every = np.concatenate([f for f in finite if f.size] or [np.zeros(1)])
    lo, hi = np.floor(every.min()) - 1, np.ceil(every.max()) + 1
    deep = len(spectrum.layers) > LEGEND_LAYERS
    height = max(4.5, 0.22 * len(spectrum.layers) + 1.5) if deep else 4.5
    fig, (dens, cdfs) = plt.subplots(1, 2, figsize=(13, height),
                                     gridspec_kw={"width_ratios": [1.25, 1]})
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(spectrum.layers)))
    if deep:
        _heatmap(dens, spectrum, finite, lo, hi)
    else:
        for layer, values, color in zip(spectrum.layers, finite, colors):
            if values.size:
                dens.hist(values, bins=80, density=True, histtype="step", color=color,
                          label=f"{layer.name} ({layer.num_weights:,} w)")
        dens.set_xlim(lo, hi)
        dens.set_ylabel("density")
        dens.legend(fontsize=7, loc="upper left")
        dens.set_title("K-FAC Fisher spectrum per layer")
    dens.set_xlabel("log eigenvalue (log λ(A) + log μ(G))")
    layout = cdf_layout(spectrum.num_weights)
    for layer, bins, color in zip(spectrum.layers, layout.bins, colors):
        values = layer.log_eigenvalues.numpy()
        if bins and np.isfinite(values).all():
            edges = np.linspace(*LOG_RANGE, bins + 1)[1:]
            cdfs.step(edges, layer_cdf(values, bins), where="post", color=color, lw=1)
    cdfs.set_xlim(lo, hi)
    cdfs.set_xlabel("log eigenvalue")
    cdfs.set_ylabel("CDF (⌊w/100⌋ bins per layer)")
    cdfs.set_title("Fisher log-eigenvalue CDF features")
    depth = plt.cm.ScalarMappable(cmap="viridis",
                                  norm=plt.Normalize(1, max(len(spectrum.layers), 2) / 0.9))
    fig.colorbar(depth, ax=cdfs, label="layer, in call order (first dark)")
    status = "" if spectrum.valid else f"  [invalid: {spectrum.reason}]"
    fig.suptitle((title + status).strip())
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def _heatmap(ax, spectrum: Spectrum, finite: list[np.ndarray], lo: float, hi: float) -> None:
    """One row per layer: the share of its eigenvalues in each log-eigenvalue bin."""
    edges = np.linspace(lo, hi, 121)
    rows = np.array([np.histogram(v, bins=edges)[0] / max(v.size, 1) for v in finite])
    shown = np.ma.masked_equal(rows, 0)
    image = ax.imshow(shown, aspect="auto", cmap="magma_r", interpolation="nearest",
                      extent=(lo, hi, len(rows) - 0.5, -0.5),
                      norm=matplotlib.colors.LogNorm(vmin=max(shown.min(), 1e-5), vmax=1))
    names = [f"{layer.name} ({layer.num_weights:,})" for layer in spectrum.layers]
    step = max(1, len(names) // 40)  # at most ~40 labels stay legible
    ax.set_yticks(range(0, len(names), step), names[::step], fontsize=7)
    ax.set_title("K-FAC Fisher spectrum per layer (share of eigenvalues per bin)")
    plt.colorbar(image, ax=ax, label="share of the layer's eigenvalues")
