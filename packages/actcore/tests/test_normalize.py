"""Normalised activations: Gaussian moments against independent integrals."""

import math

import pytest
import torch

import actcore
from actcore import ActError
from actcore.normalize import gaussian_moments, normalization

integrate = pytest.importorskip("scipy.integrate")


def _quad_moments(f):
    """E[f], E[f^2] under N(0, 1) by scipy's adaptive quadrature, split at the kink."""
    def density(x):
        return math.exp(-x * x / 2) / math.sqrt(2 * math.pi)

    def moment(power):
        return sum(integrate.quad(lambda x: f(x) ** power * density(x), a, b,
                                  epsabs=1e-13, epsrel=1e-12, limit=200)[0]
                   for a, b in ((-math.inf, 0), (0, math.inf)))

    return moment(1), moment(2)


@pytest.mark.parametrize(("name", "f"), [
    ("relu", lambda x: max(x, 0.0)),
    ("tanh", math.tanh),
    ("swish", lambda x: x / (1 + math.exp(-x)) if x > -700 else 0.0),
    ("elu", lambda x: x if x > 0 else math.expm1(x)),
    ("add(abs(x),tanh(x))", lambda x: abs(x) + math.tanh(x)),
])
def test_moments_match_adaptive_quadrature(name, f):
    mean, second = gaussian_moments(name)
    want_mean, want_second = _quad_moments(f)
    assert mean == pytest.approx(want_mean, rel=1e-9, abs=1e-12)
    assert second == pytest.approx(want_second, rel=1e-9)


def test_relu_in_closed_form_and_the_normalised_module():
    mean, std = normalization("relu(x)")
    assert mean == pytest.approx(1 / math.sqrt(2 * math.pi), rel=1e-12)
    assert std == pytest.approx(math.sqrt(0.5 - 1 / (2 * math.pi)), rel=1e-12)
    module = actcore.to_module("swish", normalize=True)
    x = torch.randn(4_000_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = module(x)
    # 4e6 samples: standard errors about 5e-4 for the mean and 1e-3 for the variance
    assert abs(y.mean().item()) < 5e-3 and abs(y.var().item() - 1) < 1e-2
    # (swish(x) - m) / s with m, s integrated independently (scipy's adaptive quadrature)
    m, second = _quad_moments(lambda t: t / (1 + math.exp(-t)) if t > -700 else 0.0)
    expected = (x[:1000] * torch.sigmoid(x[:1000]) - m) / math.sqrt(second - m * m)
    torch.testing.assert_close(y[:1000], expected, rtol=1e-9, atol=1e-9)
    assert "normalized" in repr(module)


@pytest.mark.parametrize(("expr", "message"), [
    ("zero(x)", "variance 0"),
    ("one", "variance 0"),
    ("exp(exp(x))", "no Gaussian moments: f\\(x\\)\\^2 is not finite"),
    ("exp(square(x))", "does not vanish"),
    ("reciprocal(x)", "not finite in float64 at x = 0"),
])
def test_functions_that_cannot_be_normalised_are_named(expr, message):
    with pytest.raises(ActError, match=message):
        actcore.to_module(expr, normalize=True)


def test_remembered_moments_replace_the_quadrature(monkeypatch):
    from actcore import normalize

    monkeypatch.setattr(normalize, "_REMEMBERED", {})
    computed = normalize.normalization("tanh(x)")
    normalize.remember({"tanh(x)": (0.25, 2.0)})
    assert normalize.normalization("tanh(x)") == (0.25, 2.0) != computed
    assert normalize.normalization("relu(x)") != (0.25, 2.0)  # others still integrated
