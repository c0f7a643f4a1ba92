"""Fisher CDF and quantile features, and distances."""

import numpy as np
import pytest
import torch
from torch import nn

from actcore.errors import ActError
from actfim import (
    ALL_CNN_C_NUM_WEIGHTS,
    cdf_layout,
    fisher_cdf,
    fisher_distance,
    fisher_distance_matrix,
    fisher_quantiles,
    kfac_spectrum,
    layer_cdf,
    layer_quantiles,
)
from actfim.features import (
    QUANTILE_LEVELS,
    check_fisher_features,
    kronecker_cdfs,
    kronecker_quantiles,
    layer_cdfs,
    layout_of,
)
from actfim.spectrum import LayerSpectrum, Spectrum, kronecker_logs


def spectrum_of(*layers):
    return Spectrum(layers=[
        LayerSpectrum(name=str(i), kind="Linear", num_weights=len(v), groups=1, a_size=1,
                      g_size=1, log_eigenvalues=torch.as_tensor(v, dtype=torch.float64))
        for i, v in enumerate(layers)
    ])


def test_all_cnn_c_layout_matches_the_published_length():
    layout = cdf_layout(ALL_CNN_C_NUM_WEIGHTS)
    assert layout.bins == [25, 829, 829, 1659, 3318, 3318, 3318, 369, 18]
    assert layout.length == 13683  # the published Act-Bench-CNN vectors
    assert layout.offsets[1] == 25 and layout.offsets[-1] == 13683 - 18
    legacy = cdf_layout(ALL_CNN_C_NUM_WEIGHTS, legacy=True)
    assert legacy.length == 13692 and legacy.bins[0] == 26
    assert layout_of(13683, ALL_CNN_C_NUM_WEIGHTS) == layout
    assert layout_of(13692, ALL_CNN_C_NUM_WEIGHTS) == legacy
    with pytest.raises(ActError, match="expected 13683 values, or 13692"):
        layout_of(13690, ALL_CNN_C_NUM_WEIGHTS)
    assert cdf_layout([150, 199, 200]).bins == [0, 0, 1]


def test_distances_read_both_layouts_alike():
    """A spectrum's CDF in the published layout and its legacy-layout twin (one more bin
    per layer) give nearly the same distances; the layout is found from the length."""
    rng = np.random.default_rng(4)
    spectra = [spectrum_of(rng.normal(m, 4, 9000), rng.normal(-m, 6, 25000)) for m in (-9, 3)]
    published = [fisher_cdf(s) for s in spectra]
    assert published[0].shape == (89 + 249,)
    legacy = [
        np.concatenate([layer_cdf(layer.log_eigenvalues, b) for layer, b in
                        zip(s.layers, cdf_layout(s.num_weights, legacy=True).bins, strict=True)])
        for s in spectra
    ]
    d_new = fisher_distance(*published, [9000, 25000])
    d_old = fisher_distance(*legacy, [9000, 25000])
    assert d_new == pytest.approx(fisher_distance(*spectra))
    exact = sum(_w1(a.log_eigenvalues, b.log_eigenvalues) / a.num_weights
                for a, b in zip(*(s.layers for s in spectra), strict=True))
    for layout, d in ((cdf_layout([9000, 25000]), d_new),
                      (cdf_layout([9000, 25000], legacy=True), d_old)):  # fmt: skip
        layers = zip(*(s.layers for s in spectra), layout.bins, strict=True)
        binned = sum(_w1(_snap(a.log_eigenvalues, bins), _snap(b.log_eigenvalues, bins))
                     / a.num_weights for a, b, bins in layers)
        assert d == pytest.approx(binned, rel=1e-12)  # the W1 of the binned spectra
        bound = sum(200 / bins / w for bins, w in zip(layout.bins, layout.num_weights,
                                                      strict=True))
        assert abs(d - exact) < bound  # binning moves every value by under one bin
    assert fisher_distance_matrix(np.stack(legacy), [9000, 25000])[0, 1] == pytest.approx(d_old)


def test_layer_cdf_is_the_normalised_cumulative_histogram():
    values = np.array([-150.0, -99.0, -1.0, 0.5, 3.0, 99.9, 250.0])
    cdf = layer_cdf(values, 4)  # bins of width 50 over [-100, 100]
    # Out-of-range values land in the end bins.
    assert np.allclose(cdf, np.array([2, 3, 5, 7]) / 7)
    with pytest.raises(ActError):
        layer_cdf(np.array([0.0, -np.inf]), 4)


def test_kronecker_cdfs_count_every_pair_without_forming_the_repeats():
    log_a, log_g = _floored_factors()
    for bins in (0, 7, 123):
        every_pair = layer_cdfs(kronecker_logs(log_a, log_g), bins)
        assert np.array_equal(kronecker_cdfs(log_a, log_g, bins), every_pair)
    with pytest.raises(ActError, match="not finite"):
        kronecker_cdfs(log_a.clone().fill_(-np.inf), log_g, 7)


def _floored_factors():
    """Factors of rank below their size: many eigenvalues sit on one floor value (as
    log_eigenvalues leaves them), a few rows have none, a group and ties elsewhere."""
    rng = np.random.default_rng(1)
    log_a = torch.tensor(rng.normal(-10, 30, (5, 2, 40)))
    log_g = torch.tensor(rng.normal(-20, 30, (5, 2, 12)))
    log_a[:4, :, 9:] = log_a[:4, :, 9:].amin(-1, keepdim=True) - 40  # 31 copies each
    log_g[1:, :, 3:] = -95.5
    log_g[2, 0, :2] = log_g[2, 0, 2]  # ties above the floor count like any value
    return log_a, log_g


def test_layer_quantiles_are_numpys_linear_quantiles():
    rng = np.random.default_rng(2)
    for values in (rng.normal(0, 20, 1), rng.normal(0, 20, 7), rng.normal(-5, 30, 4321),
                   np.repeat([-3.0, 1.5, 8.0], [50, 1, 20])):
        got = layer_quantiles(values)
        assert got.shape == QUANTILE_LEVELS.shape
        np.testing.assert_allclose(got, np.quantile(values, QUANTILE_LEVELS), rtol=0,
                                   atol=1e-12 * np.abs(values).max())
        assert got[0] == values.min() and got[-1] == values.max()
    with pytest.raises(ActError, match="not finite"):
        layer_quantiles(np.array([0.0, -np.inf]))


def test_kronecker_quantiles_count_every_pair_without_forming_the_repeats():
    log_a, log_g = _floored_factors()
    every_pair = kronecker_logs(log_a, log_g)
    expected = np.stack([layer_quantiles(row) for row in every_pair])
    assert np.array_equal(kronecker_quantiles(log_a, log_g), expected)
    with pytest.raises(ActError, match="not finite"):
        kronecker_quantiles(log_a.clone().fill_(-np.inf), log_g)


def test_fisher_quantiles_concatenate_the_layers_and_their_w1_is_the_distance():
    """The Manhattan distance of two layers' quantile functions, over the levels, is
    close to the 1-Wasserstein distance of their spectra (exact for the interpolated
    quantile functions; the levels sample them)."""
    rng = np.random.default_rng(3)
    s1 = spectrum_of(rng.normal(-9, 4, 3000), rng.normal(2, 6, 800))
    s2 = spectrum_of(rng.normal(3, 4, 3000), rng.normal(-1, 9, 800))
    q1, q2 = fisher_quantiles(s1), fisher_quantiles(s2)
    assert q1.shape == (2 * len(QUANTILE_LEVELS),)
    assert np.array_equal(q1[101:], layer_quantiles(s1.layers[1].log_eigenvalues))
    for layer in (0, 1):
        gaps = np.abs(q1 - q2)[101 * layer : 101 * (layer + 1)]
        w1 = _w1(s1.layers[layer].log_eigenvalues, s2.layers[layer].log_eigenvalues)
        assert gaps.mean() == pytest.approx(w1, rel=0.05)
    with pytest.raises(ActError, match="unknown Fisher feature 'quantile'; did you mean"):
        check_fisher_features("quantile")
    with pytest.raises(ActError, match="the spectrum is invalid: broken"):
        fisher_quantiles(Spectrum(layers=[], valid=False, reason="broken"))


def _w1(a, b) -> float:
    """W1 of two samples of one size: the mean gap between their sorted values."""
    return float(np.abs(np.sort(np.asarray(a)) - np.sort(np.asarray(b))).mean())


def _snap(values, bins: int) -> np.ndarray:
    """Each value moved to the upper edge of its bin over [-100, 100] (what a CDF at the
    bins' edges sees)."""
    width = 200 / bins
    index = np.clip(np.floor((np.asarray(values) + 100) / width), 0, bins - 1)
    return -100 + (index + 1) * width


def test_cdf_w1_equals_the_exact_wasserstein_distance_up_to_binning():
    rng = np.random.default_rng(0)
    a, b = rng.normal(-20, 5, 5000), rng.normal(-12, 8, 5000)
    d = fisher_distance(spectrum_of(a), spectrum_of(b)) * 5000  # distance is W1 / w_l
    bins = 5000 // 100 - 1
    assert d == pytest.approx(_w1(_snap(a, bins), _snap(b, bins)), rel=1e-12)
    # snapping moves every value up by less than a bin width, so W1 by less than that
    assert abs(d - _w1(a, b)) < 200 / bins


def test_distance_of_spectra_and_of_cdf_vectors_agree():
    rng = np.random.default_rng(1)
    s1 = spectrum_of(rng.normal(-10, 3, 300), rng.normal(-30, 9, 1200))
    s2 = spectrum_of(rng.normal(-11, 4, 300), rng.normal(-25, 9, 1200))
    s3 = spectrum_of(rng.normal(-5, 1, 300), rng.normal(-35, 2, 1200))
    d12 = fisher_distance(s1, s2)
    assert d12 > 0 and fisher_distance(s1, s1) == 0
    assert np.isclose(fisher_distance(fisher_cdf(s1), fisher_cdf(s2), [300, 1200]), d12)
    assert np.isclose(fisher_distance(s2, s1), d12)
    cdfs = np.stack([fisher_cdf(s) for s in (s1, s2, s3)])
    matrix = fisher_distance_matrix(cdfs, [300, 1200])
    assert np.isclose(matrix[0, 1], d12) and np.isclose(matrix[2, 0], fisher_distance(s3, s1))
    assert matrix[0, 2] + matrix[2, 1] >= matrix[0, 1]  # a metric
    with pytest.raises(ActError, match="needs num_weights"):
        fisher_distance(fisher_cdf(s1), fisher_cdf(s2))
    with pytest.raises(ActError, match="does not fit"):
        fisher_distance(fisher_cdf(s1), fisher_cdf(s2), [300, 1300])


def test_fisher_cdf_of_something_else_is_a_clear_error():
    with pytest.raises(ActError, match="made from a Spectrum, got NoneType"):
        fisher_cdf(None)


def test_fisher_cdf_of_a_model_and_of_an_invalid_spectrum():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(30, 40), nn.Tanh(), nn.Linear(40, 5))
    spectrum = kfac_spectrum(model, torch.randn(64, 30))
    cdf = fisher_cdf(spectrum)
    assert cdf.shape == (1240 // 100 - 1 + 205 // 100 - 1,)
    first = cdf[:11]
    assert np.all(np.diff(first) >= 0) and first[-1] == pytest.approx(1.0)
    with pytest.raises(ActError, match="invalid"):
        fisher_cdf(Spectrum(layers=[], valid=False, reason="not finite"))
