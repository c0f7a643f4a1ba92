"""Spectra against the exact Fisher (torch.func), the Kronecker identity, validity."""

import math
import re
from copy import deepcopy as copy_module

import pydantic
import pytest
import torch
from torch import nn
from torch.func import functional_call, jacrev

from actcore import ActError
from actfim import kfac_factors, kfac_spectrum
from actfim.factors import LayerFactors
from actfim.spectrum import ROUNDOFF, kronecker_logs, log_eigenvalues


def exact_fisher_blocks(model, x):
    """Per-layer diagonal blocks of the type-2 Fisher (1/N) Σ_n J_nᵀ H_n J_n of the
    softmax likelihood, from per-sample Jacobians; parameters ordered [W | b] by row."""
    params = dict(model.named_parameters())
    blocks = {}
    for layer_name in {n.rsplit(".", 1)[0] for n in params}:
        w, b = params[f"{layer_name}.weight"], params[f"{layer_name}.bias"]

        def logits(weight, bias, xi, layer_name=layer_name):
            p = {**params, f"{layer_name}.weight": weight, f"{layer_name}.bias": bias}
            return functional_call(model, p, (xi[None],))[0]

        total = 0
        for xi in x:
            jw, jb = jacrev(logits, argnums=(0, 1))(w, b, xi)  # (C, out, in), (C, out)
            j = torch.cat([jw, jb[..., None]], dim=2).reshape(jw.shape[0], -1)
            p = torch.softmax(logits(w, b, xi), 0)
            h = torch.diag(p) - torch.outer(p, p)
            total = total + j.T @ h @ j
        blocks[layer_name] = (total / len(x)).detach()
    return blocks


def kron_block(f: LayerFactors):
    """The K-FAC block in the same [W | b]-by-row order: G ⊗ A."""
    return torch.kron(f.g[0], f.a[0])


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()


def test_one_sample_kfac_is_the_exact_fisher():
    """With one input, a type-2 K-FAC block equals the exact block for every layer."""
    model = mlp()
    x = torch.randn(1, 4, dtype=torch.float64)
    exact = exact_fisher_blocks(model, x)
    factors, _, _ = kfac_factors(model, x, fisher="type2", dtype=torch.float64)
    spectrum = kfac_spectrum(model, x, fisher="type2", dtype=torch.float64)
    assert len(factors) == len(spectrum.layers) == 2  # the two Linear layers
    for f, layer in zip(factors, spectrum.layers, strict=True):
        assert torch.allclose(kron_block(f), exact[f.name], atol=1e-13)
        true = torch.linalg.eigvalsh(exact[f.name])
        ours = layer.log_eigenvalues.exp().sort().values
        floor = true.max() * ROUNDOFF * torch.finfo(torch.float64).eps
        assert len(ours) == len(true) == layer.num_weights
        big = true > floor * 10
        assert torch.allclose(ours[big], true[big], rtol=1e-8)
        assert (ours[~big] <= floor * 1.0001).all()  # the exact zeros, clamped


def test_many_samples_kfac_is_the_documented_approximation():
    """With N inputs K-FAC is E[aaᵀ] ⊗ E[ggᵀ] (exactly), an approximation of E[aaᵀ ⊗ ggᵀ]."""
    model = mlp()
    x = torch.randn(64, 4, dtype=torch.float64)
    exact = exact_fisher_blocks(model, x)
    factors, _, _ = kfac_factors(model, x, fisher="type2", dtype=torch.float64)
    for f in factors:
        kfac, true = kron_block(f), exact[f.name]
        rel = (kfac - true).norm() / true.norm()
        assert 1e-3 < rel < 0.5, rel  # an approximation, but a close one here
        # Traces: tr(A ⊗ G) = tr A · tr G, and the exact trace is E[|a|²|g|²].
        assert math.isclose(kfac.trace(), f.a[0].trace() * f.g[0].trace(), rel_tol=1e-12)


def test_kronecker_eigenvalue_identity():
    torch.manual_seed(4)
    a = torch.randn(2, 6, 9, dtype=torch.float64)
    g = torch.randn(2, 4, 5, dtype=torch.float64)
    factors = LayerFactors("x", "Conv2d", 2 * 6 * 4, a @ a.transpose(1, 2) / 9,
                           g @ g.transpose(1, 2) / 5)
    # what the orchestration does with a layer's factors: each factor's eigenvalues in log
    # space, clamped at round-off, then every pairwise sum
    logs = [log_eigenvalues(torch.linalg.eigvalsh(m)[None], torch.tensor([True]))
            for m in (factors.a, factors.g)]
    (log_a, clamped_a, bad_a), (log_g, clamped_g, bad_g) = logs
    assert bad_a == bad_g == [None] and int(clamped_a[0]) == int(clamped_g[0]) == 0
    true = torch.cat([torch.linalg.eigvalsh(torch.kron(factors.a[i], factors.g[i]))
                      for i in range(2)]).log().sort().values
    assert torch.allclose(kronecker_logs(log_a, log_g)[0].sort().values, true, atol=1e-10)


def test_mc_fisher_converges_to_type2():
    model = mlp()
    x = torch.randn(8, 4, dtype=torch.float64)
    exact, _, _ = kfac_factors(model, x, fisher="type2", dtype=torch.float64)
    mc, _, _ = kfac_factors(model, x, fisher="mc", mc_samples=4000, dtype=torch.float64)
    assert len(exact) == 2
    for e, m in zip(exact, mc, strict=True):
        assert torch.equal(e.a, m.a)
        assert (m.g - e.g).norm() / e.g.norm() < 0.06


def test_mc_draws_are_seeded():
    model = mlp()
    x = torch.randn(8, 4, dtype=torch.float64)
    a, _, _ = kfac_factors(model, x, seed=3)
    b, _, _ = kfac_factors(model, x, seed=3)
    c, _, _ = kfac_factors(model, x, seed=4)
    assert torch.equal(a[1].g, b[1].g) and not torch.equal(a[1].g, c[1].g)


def test_regression_likelihood_g_is_jacobian_outer_product():
    """Gaussian likelihood: type-2 G of the last layer is the identity (J = I there)."""
    model = mlp()
    x = torch.randn(5, 4, dtype=torch.float64)
    factors, _, _ = kfac_factors(model, x, fisher="type2", likelihood="regression",
                                 dtype=torch.float64)
    assert torch.allclose(factors[1].g[0], torch.eye(3, dtype=torch.float64))
    targets = torch.randn(5, 3, dtype=torch.float64)
    emp, _, _ = kfac_factors(model, x, targets, fisher="empirical", likelihood="regression",
                             dtype=torch.float64)
    r = model(x).detach() - targets
    assert torch.allclose(emp[1].g[0], r.T @ r / 5)


def test_float32_spectrum_close_to_float64():
    torch.manual_seed(5)
    # the 32-channel 3x3 layer takes the cross-power-spectrum path for its A
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.Tanh(),
                          nn.Conv2d(32, 8, 3, padding=1), nn.Tanh(), nn.Flatten(),
                          nn.Linear(8 * 144, 4))
    x = torch.randn(16, 3, 12, 12)
    s32 = kfac_spectrum(model, x, fisher="type2")
    s64 = kfac_spectrum(model.double(), x.double(), fisher="type2", dtype=torch.float64)
    assert s32.valid and s64.valid  # a zip over empty layers would check nothing
    assert [a.name for a in s32.layers] == [b.name for b in s64.layers] == ["0", "2", "5"]
    for a, b in zip(s32.layers, s64.layers, strict=True):
        a, b = a.log_eigenvalues.sort().values, b.log_eigenvalues.sort().values
        top = b.max()
        keep = b > top - 10  # eigenvalues within e^10 of the largest
        assert torch.allclose(a[keep], b[keep], atol=1e-3)


def test_spectrum_record_fields():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, groups=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 16, 3, bias=False), nn.LayerNorm(3))
    spectrum = kfac_spectrum(model, torch.randn(10, 3, 6, 6))
    assert spectrum.valid and spectrum.reason is None
    assert [str(s) for s in spectrum.skipped] == ["4 (LayerNorm, 6 parameters)"]
    assert spectrum.num_weights == [3 * 9 * 4 + 4, 4 * 16 * 3]
    for layer in spectrum.layers:
        assert layer.log_eigenvalues.shape == (layer.num_weights,)
        assert layer.log_eigenvalues.dtype == torch.float64
    assert spectrum.layers[1].a_size == 64 and spectrum.layers[1].g_size == 3


class Blowup(nn.Module):
    def forward(self, x):
        return torch.exp(x * 1e4)


class Broken(nn.Module):
    def forward(self, x):
        raise RuntimeError("operator exploded")


@pytest.mark.parametrize("activation, reason", [
    (Blowup(), "not finite"),
    (Broken(), "RuntimeError: operator exploded"),
])
def test_invalid_spectra_are_returned_not_raised(activation, reason):
    model = nn.Sequential(nn.Linear(4, 8), activation, nn.Linear(8, 3))
    spectrum = kfac_spectrum(model, torch.randn(5, 4))
    assert not spectrum.valid and reason in spectrum.reason


def test_dead_layers_make_the_spectrum_invalid():
    class Zero(nn.Module):
        def forward(self, x):
            return x * 0

    from actcore import to_module

    model = nn.Sequential(nn.Linear(4, 8), to_module("zero(x)"), nn.Linear(8, 3))
    spectrum = kfac_spectrum(model, torch.randn(5, 4))
    assert not spectrum.valid
    assert "layer '0': factor G (is zero)" in spectrum.reason
    # a module that is not an activation function is architecture: a zero scale there
    # silences layer '0' whatever the activation, so it is left out and named instead
    model = nn.Sequential(nn.Linear(4, 8), Zero(), nn.Linear(8, 3))
    spectrum = kfac_spectrum(model, torch.randn(5, 4))
    assert spectrum.valid and [s.name for s in spectrum.silent] == ["0"]


def test_bad_arguments_raise_act_errors():
    from actcore.errors import ActError

    model = mlp().float()
    x = torch.randn(3, 4)
    with pytest.raises(ActError, match="needs targets"):
        kfac_spectrum(model, x, fisher="empirical")
    with pytest.raises(ActError, match="unknown Fisher type"):
        kfac_spectrum(model, x, fisher="exactish")
    with pytest.raises(ActError, match="class indices"):
        kfac_spectrum(model, x, torch.tensor([0, 1, 7]), fisher="empirical")
    with pytest.raises(ActError, match=r"no nn\.Linear"):
        kfac_spectrum(nn.Sequential(nn.Tanh()), x)


@pytest.mark.parametrize(
    ("model", "inputs", "message"),
    [
        (lambda: mlp().float(), torch.randn(3, 7), "expects 4 input features, got 7"),
        (lambda: mlp().float(), torch.randint(0, 3, (3, 4)), "must be floating point"),
        (lambda: mlp().float(), torch.randn(4), "batch dimension"),
        (lambda: "not a model", torch.randn(3, 4), "must be a torch.nn.Module, got str"),
        (lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2)),
         torch.randn(2, 1, 8, 8), "expects 3 input channels, got 1"),
        (lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2)),
         torch.randn(2, 3, 8), "needs 4-D input"),
    ],
)
def test_user_errors_are_not_invalid_spectra(model, inputs, message):
    """A wrong shape, dtype or model is the user's error, never 'likely to fail'."""
    from actcore.errors import ActError

    with pytest.raises(ActError, match=message):
        kfac_spectrum(model(), inputs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    # the 32-channel 3x3 layer takes the cross-power-spectrum path for its A
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.Tanh(),
                          nn.Conv2d(32, 8, 3, padding=1), nn.Tanh(), nn.Flatten(),
                          nn.Linear(8 * 144, 4))
    x = torch.randn(16, 3, 12, 12)
    cpu = kfac_spectrum(model, x, fisher="type2")
    gpu = kfac_spectrum(model.cuda(), x.cuda(), fisher="type2")
    for a, b in zip(cpu.layers, gpu.layers, strict=True):
        top = a.log_eigenvalues.max()
        keep = a.log_eigenvalues.sort().values > top - 10
        assert torch.allclose(a.log_eigenvalues.sort().values[keep],
                              b.log_eigenvalues.sort().values[keep], atol=1e-3)


def test_vanishing_factor_is_invalid_not_infinite():
    class Tiny(nn.Module):  # first layer's G ~ 1e-42: its round-off floor underflows
        def forward(self, x):
            return x * 1e-21

    model = nn.Sequential(nn.Linear(4, 8), Tiny(), nn.Linear(8, 3))
    spectrum = kfac_spectrum(model, torch.randn(5, 4))
    assert not spectrum.valid
    assert "layer '0': log-eigenvalues are not finite" in spectrum.reason


def test_failed_decomposition_is_invalid_not_raised(monkeypatch):
    def fail(matrix):
        raise torch.linalg.LinAlgError("failed to converge")

    monkeypatch.setattr(torch.linalg, "eigvalsh", fail)
    spectrum = kfac_spectrum(mlp().float(), torch.randn(3, 4))
    # each factor LAPACK fails on (in float32, and again in float64) is named, with its
    # own kind: it is finite, and LAPACK failed on it
    assert not spectrum.valid
    assert "factor A (could not be decomposed by LAPACK)" in spectrum.reason


@pytest.mark.parametrize("failure", ["nan", "no convergence"])
def test_lapack_trouble_in_float32_is_redone_in_float64(monkeypatch, failure):
    """LAPACK's float32 solver returned NaN without an error, or failed to converge, on
    nearly singular factors (All-CNN-C at batch 2): such a factor is decomposed in
    float64."""
    real = torch.linalg.eigvalsh

    def troubled_in_float32(matrix):
        values = real(matrix)
        if matrix.dtype != torch.float32:
            return values
        if failure == "nan":
            return values.fill_(float("nan"))
        raise torch.linalg.LinAlgError("linalg.eigh: The algorithm failed to converge")

    x = torch.randn(8, 4)
    expected = kfac_spectrum(mlp().float(), x)
    monkeypatch.setattr(torch.linalg, "eigvalsh", troubled_in_float32)
    spectrum = kfac_spectrum(mlp().float(), x)
    assert spectrum.valid, spectrum.reason
    for got, want in zip(spectrum.layers, expected.layers, strict=True):
        top = want.log_eigenvalues.exp().max()
        torch.testing.assert_close(got.log_eigenvalues.exp().sort().values,
                                   want.log_eigenvalues.exp().sort().values,
                                   rtol=0, atol=1e-5 * top)


def test_mode_is_explicit_and_the_models_state_is_given_back():
    """BatchNorm in train mode normalises with the batch, in eval mode with its running
    statistics; either way the model leaves as it came (flags, running stats, counter)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 6 * 6, 4))
    with torch.no_grad():
        model[1].running_mean.fill_(2.0)
        model[1].running_var.fill_(9.0)
    model[1].eval()  # a mixed state the user chose
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    x = torch.randn(16, 3, 8, 8) * 3 + 1
    train = kfac_spectrum(model, x, mode="train")
    evaluated = kfac_spectrum(model, x, mode="eval")
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert [m.training for m in model.modules()] == flags
    assert train.mode == "train" and evaluated.mode == "eval"
    assert [str(s) for s in train.skipped] == ["1 (BatchNorm2d, 16 parameters)"]
    # the last layer sees BatchNorm's output: normalised by the batch, or by (2, 9); its
    # input factor A is that output's second moment (with a 1 for the bias), by hand
    for mode, spectrum in (("train", train), ("eval", evaluated)):
        copy = copy_module(model).train(mode == "train")
        with torch.no_grad():
            h = copy[:-1](x)
        rows = torch.cat([h, torch.ones(len(h), 1)], 1)
        factors, _, _ = kfac_factors(model, x, mode=mode)
        torch.testing.assert_close(factors[1].a[0], rows.T @ rows / len(h), rtol=1e-4, atol=1e-5)
        top = (torch.linalg.eigvalsh(factors[1].a[0]).max()
               * torch.linalg.eigvalsh(factors[1].g[0]).max())
        assert spectrum.layers[1].log_eigenvalues.max() == pytest.approx(top.log().item(),
                                                                        abs=1e-4)
    # BatchNorm's batch statistics give its output unit variance; the running ones (std 3)
    # shrink it: log-eigenvalue 2.66 against -0.87 here
    assert train.layers[1].log_eigenvalues.max() > evaluated.layers[1].log_eigenvalues.max() + 1
    with pytest.raises(ActError, match="mode must be 'train' or 'eval'"):
        kfac_spectrum(model, x, mode="inference")


def test_fisher_options_are_checked_once_and_name_the_field():
    from actfim import FisherOptions

    options = FisherOptions.of(fisher="type2", dtype=torch.float64, mode="eval")
    assert (options.fisher, options.dtype, options.mode) == ("type2", torch.float64, "eval")
    assert FisherOptions.of(options) is options and FisherOptions.of(options, seed=3).seed == 3
    with pytest.raises(pydantic.ValidationError):
        options.seed = 4  # frozen: what was checked stays as checked
    for settings, message in (({"dtype": torch.float16}, "dtype must be torch.float32 or "
                               "torch.float64, not torch.float16"),
                              ({"mc_samples": 0}, "mc_samples must be at least 1, got 0"),
                              ({"mode": "test"}, "mode must be 'train' or 'eval', got 'test'"),
                              ({"fisher": "exact"}, "unknown Fisher type 'exact'"),
                              ({"likelihood": "poisson"}, "unknown likelihood 'poisson'"),
                              ({"samples": 2}, "samples: Extra inputs are not permitted")):
        with pytest.raises(ActError, match=re.escape(message)):
            kfac_spectrum(mlp(), torch.randn(3, 4), **settings)
