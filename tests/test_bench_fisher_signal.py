"""bench/actsearch_fisher_signal.py, the Fisher-signal investigation: its score finds a
signal where there is one and none where there is none, and its saved spectra are the
ones act's batch records hold."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def signal(bench_script):
    return bench_script("actsearch_fisher_signal")


def _table(n: int = 600, seed: int = 0):
    """Accuracies with a quarter failed at chance."""
    rng = np.random.default_rng(seed)
    accuracy = rng.uniform(0.3, 0.95, n)
    failed = rng.random(n) < 0.25
    accuracy[failed] = 0.1
    return accuracy, failed, rng


def test_a_feature_that_is_the_accuracy_scores_near_one(signal):
    accuracy, failed, rng = _table()
    rows = np.column_stack([accuracy + rng.normal(0, 0.005, len(accuracy)),
                            rng.normal(0, 0.005, len(accuracy))])
    for road in ("KNR", "UMAP + KNR"):
        found = signal.scores(rows, "fisher", accuracy, failed, road)
        assert found["all"] > 0.85 and found["working"] > 0.8 and found["auc"] > 0.95, road


def test_noise_scores_near_zero(signal):
    accuracy, failed, rng = _table()
    found = signal.scores(rng.normal(size=(len(accuracy), 20)), "fisher", accuracy, failed,
                          "KNR")
    # 30 draws of ~500 predictions: the mean of a null correlation is within a few 0.01
    assert abs(found["all"]) < 0.1 and abs(found["working"]) < 0.1
    assert abs(found["auc"] - 0.5) < 0.1


def test_too_few_functions_to_predict_are_refused_by_name(signal):
    """A fit to 100 functions leaves a small table too few to predict: refused, not a
    numpy error or a Spearman of seven points."""
    accuracy, failed, rng = _table()
    n = signal.TRAIN + signal.PREDICTED - 1
    with pytest.raises(SystemExit, match=f"{n} functions to score"):
        signal.scores(rng.normal(size=(n, 3)), "fisher", accuracy[:n], failed[:n], "KNR")


def test_saved_spectra_are_the_batch_records(signal, tmp_path):
    from actbench.fisher import fisher_batch, model_factory
    from actfim.batch import spectra_for_activations

    names = ["relu(x)", "tanh(x)", "zero(x)"]
    variant = signal.Variant.parse("mc:32")
    found = signal.compute_spectra("mlp-digits", names, variant, tmp_path / "spectra")
    inputs, targets = fisher_batch("digits", 32, 0, None)
    records = spectra_for_activations(model_factory("mlp-digits"), names, inputs, targets,
                                      progress=False, stack=1)
    assert found["valid"].tolist() == [True, True, False]
    for i, name in enumerate(names[:2]):
        assert np.array_equal(found["cdf"][i], records[name].cdf)
    layers = found["quantiles"].shape[1]
    assert layers == len(found["weights"]) and found["quantiles"].shape[2] == 101
    assert np.isnan(found["quantiles"][2]).all()
    assert (np.diff(found["quantiles"][:2], axis=2) >= 0).all()  # quantiles ascend
    again = signal.compute_spectra("mlp-digits", names, variant, tmp_path / "spectra")
    assert np.array_equal(again["quantiles"][:2], found["quantiles"][:2])  # read back
