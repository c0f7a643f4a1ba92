"""Stacked spectra: many functions in one pass give what each gets alone."""

import numpy as np
import pytest
import torch
from torch import nn

from actcore import to_module
from actcore.errors import ActError
from actcore.stacked import StackedActivation
from actfim import fisher_cdf, fisher_quantiles, kfac_factors, kfac_spectrum
from actfim.batch import spectra_for_activations
from actfim.factors import stacked_factors
from actfim.spectrum import stacked_spectra
from actfim.stacked import functions_per_pass

FUNCTIONS = [
    "relu(x)", "tanh(x)", "add(sinh(x),square(x))", "mul(swish(x),erf(abs(x)))",
    "max(softsign(x),elu(x))", "selu(cosh(x))", "zero(x)", "exp(exp(exp(exp(x))))",
    "sigmoid(x)", "div(x,one(x))",
]
VALID = [f for f in FUNCTIONS if f not in ("zero(x)", "exp(exp(exp(exp(x))))")]


def linear_net(act: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 24), act, nn.Linear(24, 30), act,
                         nn.Linear(30, 5)).double()


def conv_net(act: nn.Module) -> nn.Module:
    """Stride 1 (lag algorithm), stride 2 and grouped convolutions, and a Linear head."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 8, 3, padding=1), act, nn.Conv2d(8, 8, 3, stride=2, groups=2), act,
        nn.Flatten(), nn.Linear(8 * 2 * 2, 4),
    ).double()


CASES = [(linear_net, (20, 6)), (conv_net, (12, 2, 6, 6))]


def _eigenvalues(spectrum):
    values = torch.cat([layer.log_eigenvalues for layer in spectrum.layers]).exp()
    return values.sort().values


@pytest.mark.parametrize(("net", "shape"), CASES, ids=["linear", "conv"])
def test_stacked_equals_one_function_at_a_time(net, shape):
    torch.manual_seed(1)
    x = torch.randn(*shape, dtype=torch.float64)
    stacked = stacked_spectra(net(StackedActivation(FUNCTIONS)), x, stacks=len(FUNCTIONS),
                              dtype=torch.float64, seed=3)
    factors = stacked_factors(net(StackedActivation(FUNCTIONS)), x,
                              stacks=len(FUNCTIONS), dtype=torch.float64, seed=3)
    cdfs, quantiles = stacked.cdfs(), stacked.quantiles()
    for s, name in enumerate(FUNCTIONS):
        alone = kfac_spectrum(net(to_module(name)), x, dtype=torch.float64, seed=3)
        mine = stacked.spectrum(s)
        assert (mine.valid, mine.reason) == (alone.valid, alone.reason), name
        if name not in VALID:
            assert np.isnan(cdfs[s]).all() and np.isnan(quantiles[s]).all()
            continue
        layers, _, _ = kfac_factors(net(to_module(name)), x, dtype=torch.float64, seed=3)
        for one, many in zip(layers, factors.layers, strict=True):
            for a, b in ((one.a, many.a[s]), (one.g, many.g[s])):
                torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6 * a.abs().max())
        top = _eigenvalues(alone)
        torch.testing.assert_close(_eigenvalues(mine), top, rtol=0, atol=1e-6 * top.max())
        np.testing.assert_allclose(cdfs[s], fisher_cdf(alone), rtol=0, atol=1e-6)
        # log-eigenvalues: the factors agree to a relative 1e-6, their logs to about 1e-6
        np.testing.assert_allclose(quantiles[s], fisher_quantiles(alone), rtol=0, atol=1e-6)
        assert [la.clamped_a for la in mine.layers] == [la.clamped_a for la in alone.layers]
    assert stacked.valid == [f in VALID for f in FUNCTIONS]


def test_a_bad_function_does_not_disturb_its_neighbours():
    x = torch.randn(20, 6, dtype=torch.float64)
    pair = ["exp(exp(exp(exp(x))))", "tanh(x)"]
    stacked = stacked_spectra(linear_net(StackedActivation(pair)), x, stacks=2,
                              dtype=torch.float64)
    assert stacked.reasons[0] == "the model output is not finite" and stacked.failed[0]
    alone = stacked_spectra(linear_net(StackedActivation(pair[1:])), x, stacks=1,
                            dtype=torch.float64)
    np.testing.assert_array_equal(stacked.cdfs()[1], alone.cdfs()[0])


def test_models_whose_samples_interact_are_refused_and_batches_fall_back():
    def with_batchnorm(act):
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), act, nn.Linear(8, 3))

    x = torch.randn(16, 6)
    with pytest.raises(ActError, match=r"BatchNorm1d\) uses batch statistics"):
        stacked_factors(with_batchnorm(StackedActivation(["relu(x)", "tanh(x)"])), x,
                        stacks=2)
    stacked_factors(with_batchnorm(StackedActivation(["relu(x)", "tanh(x)"])), x,
                    stacks=2, mode="eval")  # running statistics: separable
    many = spectra_for_activations(with_batchnorm, ["relu(x)", "tanh(x)"], x,
                                   progress=False, stack=2)
    one = spectra_for_activations(with_batchnorm, ["relu(x)", "tanh(x)"], x,
                                  progress=False, stack=1)
    assert many == {k: v.model_copy(update={"seconds": many[k].seconds})
                    for k, v in one.items()}


def test_batch_records_match_with_and_without_stacking(tmp_path):
    x = torch.randn(20, 6, dtype=torch.float64)
    options = dict(seed=2, progress=False, dtype=torch.float64, quantiles=True)
    one = spectra_for_activations(linear_net, FUNCTIONS, x, stack=1, **options)
    many = spectra_for_activations(linear_net, FUNCTIONS, x, stack=4,
                                   store=tmp_path / "s.sqlite", **options)
    for name in FUNCTIONS:
        a, b = one[name], many[name]
        assert (a.valid, a.reason, a.num_weights, a.clamped) == \
            (b.valid, b.reason, b.num_weights, b.clamped), name
        assert (a.quantiles is None) == (b.quantiles is None) == (not a.valid)
        if a.valid:
            np.testing.assert_allclose(b.cdf, a.cdf, rtol=0, atol=1e-6)
            np.testing.assert_allclose(b.quantiles, a.quantiles, rtol=0, atol=1e-6)


def test_a_stack_lapack_cannot_decompose_is_invalid_alone(monkeypatch):
    """LAPACK fails to converge on some degenerate factors: only that stack is lost."""
    x = torch.randn(20, 6, dtype=torch.float64)
    names = ["tanh(x)", "neg(x)", "relu(x)"]
    model = linear_net(StackedActivation(names))
    expected = stacked_spectra(model, x, stacks=3, dtype=torch.float64)
    bad = stacked_factors(model, x, stacks=3, dtype=torch.float64).layers[1].g[1]
    real = torch.linalg.eigvalsh

    def fussy(matrix):
        flat = matrix.reshape(-1, *matrix.shape[-2:])
        if any(m.shape == bad[0].shape and torch.equal(m, bad[0]) for m in flat):
            raise torch.linalg.LinAlgError("failed to converge")
        return real(matrix)

    monkeypatch.setattr(torch.linalg, "eigvalsh", fussy)
    got = stacked_spectra(model, x, stacks=3, dtype=torch.float64)
    assert got.valid == [True, False, True]
    assert got.reasons[1] == "layer '2': factor G (could not be decomposed by LAPACK)"
    np.testing.assert_array_equal(got.cdfs()[[0, 2]], expected.cdfs()[[0, 2]])


def test_stack_size_follows_the_models_activations():
    small = functions_per_pass(linear_net(nn.ReLU()), torch.randn(32, 6, dtype=torch.float64))
    big = functions_per_pass(nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU()),
                     torch.randn(128, 3, 32, 32))
    assert small == 256 and big == 1
    # in between: a Linear(6, 500) + ReLU on 100 inputs writes (500 + 500) * 100 values
    # per function; the stack is as many functions as fit in 2^24 values
    between = functions_per_pass(nn.Sequential(nn.Linear(6, 500), nn.ReLU()), torch.randn(100, 6))
    assert between == 2**24 // 100_000 == 167


@pytest.mark.parametrize(("net", "shape"), CASES, ids=["linear", "conv"])
def test_the_input_layers_factor_is_computed_and_decomposed_once(net, shape, monkeypatch):
    """The first layer sees the images in every stack: its A is one shared view, and its
    eigenvalues are computed once per process while the same A comes back (a search's
    batches of functions share one Fisher batch); each stack's spectrum is unchanged."""
    from actfim import stacked as module

    torch.manual_seed(1)
    x = torch.randn(*shape, dtype=torch.float64)
    factors = stacked_factors(net(StackedActivation(VALID)), x, stacks=len(VALID),
                              dtype=torch.float64, seed=3)
    first, second = factors.layers[0].a, factors.layers[1].a
    assert first.stride(0) == 0 and second.stride(0) != 0
    alone = kfac_factors(net(to_module("relu(x)")), x, dtype=torch.float64, seed=3)
    torch.testing.assert_close(first[0], alone[0][0].a, rtol=1e-12, atol=1e-12)

    sizes: list[int] = []
    real = module._each_eigvalsh

    def counting(factors, stacks, *progress):
        sizes.extend(f.shape[0] for f in factors)
        return real(factors, stacks)

    monkeypatch.setattr(module, "_each_eigvalsh", counting)
    module._SHARED.clear()
    spectra = stacked_spectra(net(StackedActivation(VALID)), x, stacks=len(VALID),
                              dtype=torch.float64, seed=3)
    assert sizes.count(1) == 1  # the shared A: one matrix, not len(VALID)
    sizes.clear()
    again = stacked_spectra(net(StackedActivation(VALID[::-1])), x, stacks=len(VALID),
                            dtype=torch.float64, seed=3)
    assert 1 not in sizes  # the next batch of functions reuses its eigenvalues
    for s, name in enumerate(VALID):
        one = kfac_spectrum(net(to_module(name)), x, dtype=torch.float64, seed=3)
        for mine in (spectra.spectrum(s), again.spectrum(len(VALID) - 1 - s)):
            assert mine.valid == one.valid
            np.testing.assert_allclose(_eigenvalues(mine), _eigenvalues(one), rtol=1e-8,
                                       atol=1e-12)
