"""Search features from spectra: the Act-Bench "Fisher log eigenvalue CDF" and its
distance.

Layer l with w_l weights gets ⌊w_l/100⌋ evenly spaced histogram edges over [−100, 100],
so ⌊w_l/100⌋ − 1 bins (none below 200 weights), the layout of the published Act-Bench
tables (13,683 values for All-CNN-C); its log-eigenvalues are histogrammed (values
outside the range fall in the end bins) and the normalised cumulative histogram is
stored. The feature vector concatenates the layers. Vectors in act's earlier layout
(⌊w_l/100⌋ bins a layer, 13,692 for All-CNN-C) are still read: :func:`layout_of` tells
the two apart by length. The distance of two functions is Σ_l W1(layer l)/w_l, where
the 1-Wasserstein distance of two binned spectra is the L1 distance of their CDFs times
the bin width — so it can be computed from fresh spectra and from CDF vectors read from
tables alike.

The other feature a spectrum gives is each layer's *quantile function*: its
log-eigenvalues at :data:`QUANTILE_LEVELS` (0, 1%, ..., 100%), layers concatenated. It
has no range or bin count to choose, every layer gets the same number of values whatever
its size, and the Manhattan distance of two quantile functions is (up to the number of
levels) the sum of the layers' 1-Wasserstein distances. On act's convolutional table it
carried more signal about accuracy than the CDF, and did not depend on the Fisher batch
(see the docs' Fisher-signal experiment).
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import BaseModel

from actcore.errors import ActError, UnknownNameError
from actfim.eigenvalues import Spectrum

LOG_RANGE = (-100.0, 100.0)
#: the levels of each layer's quantile function
QUANTILE_LEVELS = np.linspace(0.0, 1.0, 101)
#: the Fisher features of a spectrum: the Act-Bench CDF, or the layers' quantile functions
FISHER_FEATURES = ("cdf", "quantiles")

# Weights (with bias) per layer of All-CNN-C on CIFAR-10, as in the Act-Bench-CNN table.
ALL_CNN_C_NUM_WEIGHTS = [
    2592 + 96, 82944 + 96, 82944 + 96, 165888 + 192, 331776 + 192,
    331776 + 192, 331776 + 192, 36864 + 192, 1920 + 10,
]


class CdfLayout(BaseModel):
    """Where each layer's CDF lies in a concatenated feature vector."""

    num_weights: list[int]
    bins: list[int]
    offsets: list[int]  # start of each layer; offsets[-1] + bins[-1] == length

    @property
    def length(self) -> int:
        return sum(self.bins)

    def split(self, vector: np.ndarray) -> list[np.ndarray]:
        """The per-layer CDFs of a feature vector."""
        vector = np.asarray(vector, dtype=np.float64)
        if vector.shape != (self.length,):
            raise ActError(
                f"a Fisher CDF vector of length {vector.shape} does not fit this layout "
                f"(length {self.length} for {len(self.bins)} layers)"
            )
        return [vector[o : o + b] for o, b in zip(self.offsets, self.bins)]


def cdf_layout(num_weights: list[int], legacy: bool = False) -> CdfLayout:
    """The layout of the concatenated CDF for layers with these weight counts: the
    published one (⌊w/100⌋ − 1 bins a layer), or act's earlier one (⌊w/100⌋)."""
    if any(w <= 0 for w in num_weights):
        raise ActError(f"layer weight counts must be positive, got {num_weights}")
    bins = [w // 100 if legacy else max(w // 100 - 1, 0) for w in num_weights]
    offsets = np.concatenate([[0], np.cumsum(bins)[:-1]]).astype(int).tolist()
    return CdfLayout(num_weights=list(num_weights), bins=bins, offsets=offsets)


def layout_of(length: int, num_weights: list[int]) -> CdfLayout:
    """The layout a CDF vector of ``length`` values has for these layers."""
    for legacy in (False, True):
        layout = cdf_layout(num_weights, legacy)
        if layout.length == length:
            return layout
    raise ActError(
        f"a Fisher CDF vector of length {length} does not fit layers of {num_weights} "
        f"weights (expected {cdf_layout(num_weights).length} values, or "
        f"{cdf_layout(num_weights, legacy=True).length} in act's earlier layout)"
    )


def layer_cdf(log_eigenvalues: torch.Tensor | np.ndarray, bins: int) -> np.ndarray:
    """Normalised cumulative histogram of log-eigenvalues over :data:`LOG_RANGE`."""
    values = torch.as_tensor(log_eigenvalues, dtype=torch.float64).flatten()
    return layer_cdfs(values[None], bins)[0]


def layer_cdfs(log_eigenvalues: torch.Tensor, bins: int) -> np.ndarray:
    """:func:`layer_cdf` of each row of ``(rows, values)``, in one pass.

    Values outside the range fall in the end bins; a value lands in bin
    ⌊(v − lo)·bins/(hi − lo)⌋, ``torch.histc``'s rule to the last bit.
    """
    values = torch.as_tensor(log_eigenvalues, dtype=torch.float64)
    return _binned_cdfs(values, None, values.shape[1], bins)


def kronecker_cdfs(log_a: torch.Tensor, log_g: torch.Tensor, bins: int) -> np.ndarray:
    """:func:`layer_cdfs` of the Kronecker spectra log λ_i(A) + log μ_j(G) of stacks of
    factors ``(rows, groups, d)``, without forming the repeated pairs.

    With a batch smaller than a factor, most of its eigenvalues are clamped to one floor
    value: the input layer of an MLP on 784 pixels has 785·128 pairs but a few hundred
    distinct ones. Each row's copies of its smallest value are counted once with their
    multiplicity, so the same sums land in the same bins as over every pair.
    """
    return _binned_cdfs(*_kronecker_pairs(log_a, log_g), bins)


def _kronecker_pairs(log_a: torch.Tensor, log_g: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Each row's distinct pairs log λ_i(A) + log μ_j(G), their counts as weights, and
    the number of pairs a row stands for."""
    a, weight_a = _merge_smallest(log_a.to(torch.float64))
    g, weight_g = _merge_smallest(log_g.to(torch.float64))
    pairs = (a[..., :, None] + g[..., None, :]).flatten(1)
    weights = (weight_a[..., :, None] * weight_g[..., None, :]).flatten(1)
    return pairs, weights, log_a.shape[1] * log_a.shape[2] * log_g.shape[2]


def _merge_smallest(logs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row sorted in descending order and cut after its first copy of its smallest
    value, which carries the copies' count as its weight (the others weigh 1); rows are
    cut at one common length, later entries weighing 0."""
    values = logs.sort(dim=-1, descending=True).values
    copies = (values == values[..., -1:]).sum(-1, keepdim=True)
    above = values.shape[-1] - copies  # entries larger than the smallest
    keep = int(above.max()) + 1
    position = torch.arange(keep)
    weights = (position < above).double() + (position == above) * copies.double()
    return values[..., :keep], weights


def _binned_cdfs(values: torch.Tensor, weights: torch.Tensor | None, total: int,
                 bins: int) -> np.ndarray:
    rows = values.shape[0]
    if bins == 0:
        return np.zeros((rows, 0))
    if not torch.isfinite(values).all():
        raise ActError("log-eigenvalues are not finite; the spectrum is invalid")
    lo, hi = LOG_RANGE
    index = ((values.clamp(lo, hi) - lo) * bins / (hi - lo)).floor().long().clamp_(0, bins - 1)
    index += torch.arange(rows)[:, None] * bins
    flat = None if weights is None else weights.flatten()
    counts = torch.bincount(index.flatten(), flat, minlength=rows * bins).reshape(rows, bins)
    return (counts.cumsum(1).double() / total).numpy()


def layer_quantiles(log_eigenvalues: torch.Tensor | np.ndarray) -> np.ndarray:
    """The log-eigenvalues at :data:`QUANTILE_LEVELS`, interpolated linearly between
    order statistics (numpy's default quantile)."""
    values = torch.as_tensor(log_eigenvalues, dtype=torch.float64).flatten()
    return _weighted_quantiles(values[None], None, len(values))[0]


def kronecker_quantiles(log_a: torch.Tensor, log_g: torch.Tensor) -> np.ndarray:
    """:func:`layer_quantiles` of each row's Kronecker spectrum log λ_i(A) + log μ_j(G)
    (stacks of factors ``(rows, groups, d)``), the floor's copies counted once with
    their multiplicity as in :func:`kronecker_cdfs`."""
    return _weighted_quantiles(*_kronecker_pairs(log_a, log_g))


def _weighted_quantiles(values: torch.Tensor, weights: torch.Tensor | None,
                        total: int) -> np.ndarray:
    """Quantiles of each row of ``values``, entry k counted ``weights[k]`` times (once
    without weights; ``total`` copies a row), as if over the repeated values."""
    if not torch.isfinite(values).all():
        raise ActError("log-eigenvalues are not finite; the spectrum is invalid")
    order = values.argsort(dim=1, stable=True)
    values = values.gather(1, order)
    copies = None if weights is None else weights.gather(1, order).cumsum(1)
    positions = torch.as_tensor(QUANTILE_LEVELS) * (total - 1)  # among the copies
    fraction = positions - positions.floor()

    def at(position: torch.Tensor) -> torch.Tensor:  # each row's order statistic there
        position = position.expand(len(values), -1).contiguous()
        index = position.long() if copies is None else \
            torch.searchsorted(copies, position, right=True)
        return values.gather(1, index)

    low, high = at(positions.floor()), at(positions.ceil())
    return (low + fraction * (high - low)).numpy()


def fisher_quantiles(spectrum: Spectrum) -> np.ndarray:
    """The concatenated per-layer quantile functions (:func:`layer_quantiles`)."""
    parts = [layer_quantiles(layer.log_eigenvalues) for layer in _valid(spectrum).layers]
    return np.concatenate(parts) if parts else np.zeros(0)


def check_fisher_features(kind: str) -> str:
    """``kind`` if it is one of :data:`FISHER_FEATURES`; else an error listing them."""
    if kind not in FISHER_FEATURES:
        raise UnknownNameError("Fisher feature", kind, FISHER_FEATURES)
    return kind


def _valid(spectrum: Spectrum) -> Spectrum:
    if not isinstance(spectrum, Spectrum):
        raise ActError(f"Fisher features are made from a Spectrum, got "
                       f"{type(spectrum).__name__}")
    if not spectrum.valid:
        raise ActError(f"the spectrum is invalid: {spectrum.reason}")
    return spectrum


def fisher_cdf(spectrum: Spectrum) -> np.ndarray:
    """The concatenated per-layer CDFs (the Act-Bench "Fisher log eigenvalue CDF")."""
    layout = cdf_layout(_valid(spectrum).num_weights)
    parts = [layer_cdf(layer.log_eigenvalues, b)
             for layer, b in zip(spectrum.layers, layout.bins)]
    return np.concatenate(parts) if parts else np.zeros(0)


def fisher_distance(
    a: Spectrum | np.ndarray,
    b: Spectrum | np.ndarray,
    num_weights: list[int] | None = None,
) -> float:
    """Σ_l W1(layer l)/w_l between two spectra or two CDF vectors.

    For CDF vectors pass the layers' weight counts (``num_weights``; for the Act-Bench
    All-CNN-C table that is :data:`ALL_CNN_C_NUM_WEIGHTS`); spectra carry their own.
    """
    if num_weights is None:
        for side in (a, b):
            if isinstance(side, Spectrum):
                num_weights = side.num_weights
                break
        else:
            raise ActError("fisher_distance of two CDF vectors needs num_weights")
    vectors = [fisher_cdf(s) if isinstance(s, Spectrum) else np.asarray(s) for s in (a, b)]
    layout = layout_of(len(vectors[0]), num_weights)
    cdfs = [layout.split(v) for v in vectors]
    width = (LOG_RANGE[1] - LOG_RANGE[0])
    total = 0.0
    for fa, fb, bins, w in zip(*cdfs, layout.bins, layout.num_weights):
        if bins:
            total += float(np.abs(fa - fb).sum()) * (width / bins) / w
    return total


def fisher_distance_matrix(cdfs: np.ndarray, num_weights: list[int]) -> np.ndarray:
    """All pairwise :func:`fisher_distance` values of the rows of ``cdfs``."""
    cdfs = np.asarray(cdfs, dtype=np.float64)
    if cdfs.ndim != 2:
        raise ActError(f"expected an (n, length) array of CDF vectors, got {cdfs.shape}")
    layout = layout_of(cdfs.shape[1], num_weights)
    scale = np.concatenate([
        np.full(bins, (LOG_RANGE[1] - LOG_RANGE[0]) / bins / w) if bins else np.zeros(0)
        for bins, w in zip(layout.bins, layout.num_weights)
    ])
    weighted = cdfs * scale
    out = np.zeros((len(cdfs), len(cdfs)))
    for i in range(len(cdfs)):
        out[i] = np.abs(weighted - weighted[i]).sum(1)
    return out
