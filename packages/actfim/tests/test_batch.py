"""Batch spectra: same weights for every function, resumable atomic store."""

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from actcore.errors import ActError
from actfim.batch import SpectrumStore, activation_spectra, spectra_for_activations
from actfim.features import fisher_cdf, fisher_quantiles


class Counting:
    """A model factory that records the models it built."""

    def __init__(self, fail_on=None):
        self.models = []
        self.fail_on = fail_on

    def __call__(self, activation):
        if self.fail_on is not None and str(activation) == self.fail_on:
            raise KeyboardInterrupt  # the run is killed here
        torch.randn(len(self.models) + 1)  # varying draws must not shift the weights
        model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), activation, nn.Flatten(),
                              nn.Linear(4 * 25, 3))
        self.models.append(model)
        return model


FUNCTIONS = ["relu(x)", "tanh(x)", "zero(x)", "reciprocal(zero(x))"]


def test_same_initial_weights_and_validity():
    factory = Counting()
    records = spectra_for_activations(factory, FUNCTIONS, torch.randn(16, 2, 5, 5),
                                      progress=False, stack=1)
    assert list(records) == FUNCTIONS
    first = factory.models[0][0].weight  # the reference build
    assert len(factory.models) == 1 + len(FUNCTIONS)
    assert all(torch.equal(m[0].weight, first) for m in factory.models[1:])
    assert records["relu(x)"].valid and len(records["relu(x)"].cdf) == 0 + 2  # 76, 303 weights
    assert not records["zero(x)"].valid and "is zero" in records["zero(x)"].reason
    assert "not finite" in records["reciprocal(zero(x))"].reason


def test_whole_spectra_are_the_records_spectra():
    """``activation_spectra`` gives each function the weights the records were computed on,
    so its spectra's CDFs are the records' to the last bit."""
    x, y = torch.randn(16, 2, 5, 5), torch.randint(0, 3, (16,))
    records = spectra_for_activations(Counting(), FUNCTIONS, x, y, progress=False, stack=1,
                                      fisher="empirical")
    factory = Counting()
    spectra = dict(activation_spectra(factory, FUNCTIONS, x, y, fisher="empirical"))
    assert list(spectra) == FUNCTIONS and len(factory.models) == 1 + len(FUNCTIONS)
    for name in ("relu(x)", "tanh(x)"):
        assert spectra[name].fisher == "empirical"
        assert np.array_equal(fisher_cdf(spectra[name]), records[name].cdf)
        assert records[name].quantiles is None  # not asked for
        assert [len(layer.log_eigenvalues) for layer in spectra[name].layers] == [76, 303]
    assert not spectra["zero(x)"].valid and "is zero" in spectra["zero(x)"].reason


def test_whole_spectra_refuse_bad_input_before_computing_any():
    """An unknown name or option is refused when called, not after earlier spectra."""
    x = torch.randn(8, 2, 5, 5)
    for expressions, options, message in ((["relu(x)", "nope(x)"], {}, "nope"),
                                          (["relu(x)"], {"fisher": "exact"}, "Fisher type")):
        factory = Counting()
        with pytest.raises(ActError, match=message):
            activation_spectra(factory, expressions, x, **options)
        assert factory.models == []


def test_store_resumes_after_a_kill(tmp_path):
    path = tmp_path / "spectra.sqlite"
    x = torch.randn(8, 2, 5, 5)
    with pytest.raises(KeyboardInterrupt):
        spectra_for_activations(Counting(fail_on="zero(x)"), FUNCTIONS, x, store=path,
                                progress=False, stack=1)
    with SpectrumStore(path) as store:
        assert len(store) == 2 and "tanh(x)" in store
        kept = store.get("relu(x)")
    factory = Counting()
    records = spectra_for_activations(factory, FUNCTIONS, x, store=path, progress=False,
                                      stack=1)
    assert len(factory.models) == 1 + 2  # the reference build and the two missing ones
    assert records["relu(x)"] == kept
    again = spectra_for_activations(Counting(), ["relu(x)"], x, progress=False, stack=1)
    assert again["relu(x)"].cdf == kept.cdf  # same seed, same result without the store
    with pytest.raises(ActError, match="other settings"):
        spectra_for_activations(Counting(), FUNCTIONS, x, store=path, fisher="type2",
                                progress=False)
    with pytest.raises(ActError, match="other settings"):  # its records lack them
        spectra_for_activations(Counting(), FUNCTIONS, x, store=path, quantiles=True,
                                progress=False)


def test_records_keep_quantile_functions_when_asked():
    x = torch.randn(16, 2, 5, 5)
    records = spectra_for_activations(Counting(), FUNCTIONS, x, progress=False, stack=1,
                                      quantiles=True)
    spectra = dict(activation_spectra(Counting(), FUNCTIONS, x))
    for name in ("relu(x)", "tanh(x)"):
        assert np.array_equal(fisher_quantiles(spectra[name]), records[name].quantiles)
        assert len(records[name].quantiles) == 2 * 101
    assert records["zero(x)"].quantiles is None  # an invalid spectrum has none


def test_export_json_has_the_act_bench_key(tmp_path):
    path = tmp_path / "s.sqlite"
    spectra_for_activations(Counting(), ["relu(x)", "zero(x)"], torch.randn(8, 2, 5, 5),
                            store=path, progress=False)
    with SpectrumStore(path) as store:
        store.export_json(tmp_path / "table.json")
    table = json.loads((tmp_path / "table.json").read_text())
    assert len(table["relu(x)"]["Fisher log eigenvalue CDF"]) == 2
    assert table["zero(x)"]["Fisher log eigenvalue CDF"] is None
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind


def test_bad_expression_is_rejected_before_any_work():
    factory = Counting()
    with pytest.raises(ActError):
        spectra_for_activations(factory, ["relu(x)", "relu(x"], torch.randn(4, 2, 5, 5),
                                progress=False)
    assert factory.models == []


def test_normalised_batch_records_functions_without_moments_as_invalid():
    from torch import nn

    from actfim.batch import spectra_for_activations

    def make(activation):
        return nn.Sequential(nn.Linear(4, 128), activation, nn.Linear(128, 10))

    class NormalisedExp(nn.Module):
        """By hand: for x ~ N(0, 1), E exp(x) = e^(1/2) and E exp(x)² = e²."""

        def forward(self, x):
            return (torch.exp(x) - math.exp(0.5)) / math.sqrt(math.exp(2) - math.exp(1))

    inputs = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    by_hand = spectra_for_activations(lambda activation: make(NormalisedExp()), ["exp(x)"],
                                      inputs, progress=False)
    plain = spectra_for_activations(make, ["exp(x)"], inputs, progress=False)
    records = spectra_for_activations(make, ["exp(x)", "zero(x)"], inputs, progress=False,
                                      normalize=True)
    assert records["exp(x)"].valid
    np.testing.assert_allclose(records["exp(x)"].cdf, by_hand["exp(x)"].cdf, atol=1e-6)
    assert np.abs(np.subtract(plain["exp(x)"].cdf, by_hand["exp(x)"].cdf)).max() > 0.1
    assert not records["zero(x)"].valid and "variance 0" in records["zero(x)"].reason
