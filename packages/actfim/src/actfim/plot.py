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


def plot_spectrum(spectrum: Spectrum, path: str | os.PathLike, title: str = "") -> Path:
    """Save a two-panel PNG: each layer's log-eigenvalue density and its binned CDF."""
    if not spectrum.layers:
        raise ActError(f"nothing to plot: {spectrum.reason or 'the spectrum is empty'}")
    fig, (dens, cdfs) = plt.subplots(1, 2, figsize=(12, 4.5))
    layout = cdf_layout(spectrum.num_weights)
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(spectrum.layers)))
    for layer, bins, color in zip(spectrum.layers, layout.bins, colors):
        values = layer.log_eigenvalues.numpy()
        finite = values[np.isfinite(values)]
        label = f"{layer.name} ({layer.num_weights:,} w)"
        if finite.size:
            dens.hist(finite, bins=80, density=True, histtype="step", color=color,
                      label=label)
        if bins and finite.size == values.size:
            edges = np.linspace(*LOG_RANGE, bins + 1)[1:]
            cdfs.step(edges, layer_cdf(values, bins), where="post", color=color,
                      label=label)
    dens.set_xlabel("log eigenvalue (log λ(A) + log μ(G))")
    dens.set_ylabel("density")
    dens.set_title("K-FAC Fisher spectrum per layer")
    cdfs.set_xlabel("log eigenvalue")
    cdfs.set_ylabel("CDF (m_l = ⌊w_l/100⌋ bins over [−100, 100])")
    cdfs.set_title("Fisher log-eigenvalue CDF features")
    cdfs.legend(fontsize=7, loc="lower right")
    status = "" if spectrum.valid else f"  [invalid: {spectrum.reason}]"
    fig.suptitle((title + status).strip())
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
