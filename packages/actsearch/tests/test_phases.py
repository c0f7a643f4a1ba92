"""A live search killed in any phase resumes from what that phase had finished."""

from __future__ import annotations

import numpy as np
import pytest

from actsearch import candidates, embedding, live
from actsearch.live import SearchConfig, run_search

OPS = ["relu", "tanh", "sigmoid", "elu", "identity", "abs", "swish", "softplus", "negative"]


def config(**changes) -> SearchConfig:
    base = dict(task="mlp-digits", space=["max(unary(x),unary(x))"], operators=OPS,
                budget=9, features="union", epochs=1, device="cpu")
    return SearchConfig(**{**base, **changes})


class Killer:
    """Wraps a function; raises KeyboardInterrupt (a kill) on call number ``at``."""

    def __init__(self, fn, at: int | None = None):
        self.fn, self.at, self.calls = fn, at, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.at is not None and self.calls == self.at:
            raise KeyboardInterrupt
        return self.fn(*args, **kwargs)


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(candidates, "CHUNK", 4)


def test_killed_while_computing_fisher_chunks(tmp_path, monkeypatch, small_chunks):
    fisher = Killer(candidates.fisher_features, at=3)
    monkeypatch.setattr(candidates, "fisher_features", fisher)
    with pytest.raises(KeyboardInterrupt):
        run_search(config(), tmp_path, workers=0, progress=False)
    saved = sorted((tmp_path / "fisher").glob("chunk-*.npy"))
    assert len(saved) == 2  # the two finished chunks, nothing half-written
    outputs = Killer(candidates.output_features)
    monkeypatch.setattr(candidates, "output_features", outputs)
    fisher.at, fisher.calls = None, 0
    run_search(config(), tmp_path, workers=0, progress=False)
    names, _ = candidates.candidate_functions(config(), tmp_path / "cache")
    chunks = -(-(len(names) - 1) // 4)  # every function but one has finite outputs
    assert fisher.calls == chunks - 2  # only the missing chunks
    assert outputs.calls == 0  # classes and outputs came back from their file


def test_killed_while_embedding(tmp_path, monkeypatch, small_chunks):
    umap = Killer(embedding.compute_embedding, at=1)
    monkeypatch.setattr(embedding, "compute_embedding", umap)
    with pytest.raises(KeyboardInterrupt):
        run_search(config(), tmp_path, workers=0, progress=False)
    fisher = Killer(candidates.fisher_features)
    monkeypatch.setattr(candidates, "fisher_features", fisher)
    umap.at = None
    run_search(config(), tmp_path, workers=0, progress=False)
    assert fisher.calls == 0 and umap.calls == 2  # features kept; the embedding redone
    again = Killer(embedding.compute_embedding)
    monkeypatch.setattr(embedding, "compute_embedding", again)
    run_search(config(budget=10), tmp_path, workers=0, progress=False)
    assert again.calls == 0  # and now cached


def test_killed_while_training(tmp_path, monkeypatch, small_chunks):
    train = Killer(live.train_functions, at=5)
    monkeypatch.setattr(live, "train_functions", train)
    with pytest.raises(KeyboardInterrupt):
        run_search(config(), tmp_path, workers=0, progress=False)
    fisher = Killer(candidates.fisher_features)
    umap = Killer(embedding.compute_embedding)
    monkeypatch.setattr(candidates, "fisher_features", fisher)
    monkeypatch.setattr(embedding, "compute_embedding", umap)
    train.at, train.calls = None, 0
    done = run_search(config(), tmp_path, workers=0, progress=False)
    assert len(done) == 9 and train.calls == 5  # 4 kept, 5 more
    assert fisher.calls == umap.calls == 0
    assert (tmp_path / "search_map.png").is_file()
    assert np.isfinite([e.val_accuracy for e in done]).all()


def test_workers_are_stopped_while_a_large_embedding_runs(tmp_path, monkeypatch):
    """Nearest-neighbour descent is the run's memory peak: the idle workers go, and
    come back for the trainings."""
    from actbench.executors import Pool

    monkeypatch.setattr(embedding, "EXACT_UP_TO", 5)  # this small space takes that path
    events = []
    pause, resume = Pool.pause, Pool.resume
    monkeypatch.setattr(Pool, "pause", lambda self: (events.append("pause"), pause(self))[1])
    monkeypatch.setattr(Pool, "resume", lambda self: (events.append("resume"), resume(self))[1])
    umap = Killer(embedding.compute_embedding)
    monkeypatch.setattr(embedding, "compute_embedding",
                        lambda *a, **k: (events.append("embed"), umap(*a, **k))[1])
    done = run_search(config(budget=10), tmp_path, workers=1, progress=False)
    assert events == ["pause", "embed", "resume"] and len(done) == 10


def test_a_large_search_keeps_its_fisher_rows_in_float32(tmp_path, monkeypatch):
    """Rows headed for nearest-neighbour descent (float32 there) are float32 from the
    start: half the memory, the same values that descent sees."""
    from actbench.executors import SerialExecutor

    exact, _ = candidates.prepare(config(), tmp_path / "exact", SerialExecutor(), False)
    monkeypatch.setattr(embedding, "EXACT_UP_TO", 5)
    large, _ = candidates.prepare(config(), tmp_path / "large", SerialExecutor(), False)
    assert exact.fisher.dtype == np.float64 and large.fisher.dtype == np.float32
    assert np.array_equal(large.fisher, exact.fisher.astype(np.float32), equal_nan=True)
    assert np.isfinite(large.fisher).any(axis=1).sum() > 5


def test_normalized_search_computes_gaussian_moments_once(tmp_path, monkeypatch,
                                                          small_chunks):
    """A normalised search saves its candidates' moments: resuming reads them back, and
    the Fisher workers are handed them instead of integrating again."""
    from actcore import normalize

    monkeypatch.setattr(normalize, "_REMEMBERED", {})  # this test's workers start empty
    fisher = Killer(candidates.fisher_features, at=2)
    monkeypatch.setattr(candidates, "fisher_features", fisher)
    with pytest.raises(KeyboardInterrupt):
        run_search(config(normalize=True), tmp_path, workers=0, progress=False)
    assert list((tmp_path / "moments").glob("chunk-*.npy"))
    moments = Killer(candidates.normalizations)
    monkeypatch.setattr(candidates, "normalizations", moments)
    fisher.at = None
    run_search(config(normalize=True), tmp_path, workers=0, progress=False)
    assert moments.calls == 0  # read back from the search's folder

    # a worker given the moments integrates nothing; its rows are what it computes alone
    names, _ = candidates.candidate_functions(config(), tmp_path / "cache")
    chunk = [n for n in names if n in ("relu(x)", "tanh(x)", "elu(x)")]
    assert len(chunk) == 3
    given = candidates.normalizations(chunk)
    alone = candidates.fisher_features(config(normalize=True), chunk)

    def no_quadrature(text):
        raise AssertionError(f"integrated {text} again")

    monkeypatch.setattr(normalize, "_REMEMBERED", {})
    monkeypatch.setattr(normalize, "_moments", no_quadrature)
    handed = candidates.fisher_features(config(normalize=True), chunk, given)
    assert np.array_equal(handed, alone)


def test_a_search_on_quantile_functions(tmp_path):
    """``fisher_features="quantiles"``: each layer's quantile function instead of the CDF,
    the spectra's own (as actfim computes them alone), in chunks of their own name."""
    from actbench import get_task
    from actbench.executors import SerialExecutor
    from actbench.fisher import fisher_batch, model_factory
    from actfim import fisher_quantiles
    from actfim.batch import activation_spectra

    chosen = config(fisher_features="quantiles")
    assert chosen.settings()["fisher_features"] == "quantiles"
    assert "fisher_features" not in config().settings()  # as studies before the option
    features, _ = candidates.prepare(chosen, tmp_path, SerialExecutor(), False)
    cdf, _ = candidates.prepare(config(), tmp_path, SerialExecutor(), False)
    assert len(list((tmp_path / "fisher").glob("chunk-*.npy"))) == 2  # one file each
    assert np.array_equal(np.isfinite(features.fisher).all(1), np.isfinite(cdf.fisher).all(1))
    task = get_task("mlp-digits")
    inputs, targets = fisher_batch(task.dataset, chosen.fisher_batch, chosen.seed, None)
    names = ["relu(x)", "tanh(x)"]
    for name, spectrum in activation_spectra(model_factory(task.name), names, inputs,
                                             targets, seed=chosen.seed):
        row = features.fisher[features.names.index(name)]
        assert row.shape == (len(spectrum.layers) * 101,)
        # float32 eigenvalues (stacked here, alone there) agree to a few ulps of each
        # layer's largest (1.5 seen); a small one's log may move by 1e-3
        pairs = zip(row.reshape(-1, 101), fisher_quantiles(spectrum).reshape(-1, 101))
        for mine, alone in pairs:
            ulp = np.finfo(np.float32).eps * np.exp(alone[-1])
            np.testing.assert_allclose(np.exp(mine), np.exp(alone), rtol=0, atol=256 * ulp)
