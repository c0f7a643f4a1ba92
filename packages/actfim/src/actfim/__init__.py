"""actfim: K-FAC Fisher eigenvalue spectra of PyTorch models, as activation-search features.

>>> spectrum = actfim.kfac_spectrum(model, inputs)          # one entry per layer
>>> features = actfim.fisher_cdf(spectrum)                   # Act-Bench "Fisher CDF"
>>> features = actfim.fisher_quantiles(spectrum)             # per-layer quantile functions
>>> actfim.fisher_distance(spectrum, other)                  # Σ_l W1 / w_l
"""

from actcore.versions import package_version
from actfim.factors import LayerFactors, kfac_factors
from actfim.features import (
    ALL_CNN_C_NUM_WEIGHTS,
    CdfLayout,
    cdf_layout,
    fisher_cdf,
    fisher_distance,
    fisher_distance_matrix,
    fisher_quantiles,
    layer_cdf,
    layer_quantiles,
)
from actfim.labels import FisherType, Likelihood
from actfim.options import FisherOptions
from actfim.spectrum import LayerSpectrum, Spectrum, kfac_spectrum, stacked_spectra

__version__ = package_version("actfim")

__all__ = [
    "ALL_CNN_C_NUM_WEIGHTS",
    "CdfLayout",
    "FisherOptions",
    "FisherType",
    "LayerFactors",
    "LayerSpectrum",
    "Likelihood",
    "Spectrum",
    "cdf_layout",
    "fisher_cdf",
    "fisher_distance",
    "fisher_distance_matrix",
    "fisher_quantiles",
    "kfac_factors",
    "kfac_spectrum",
    "layer_cdf",
    "layer_quantiles",
    "stacked_spectra",
]
