"""bench/actsearch_quantile_replay.py reads the spectra the Fisher-signal script saves:
each function's CDF and quantile functions in the table's order, NaN where a spectrum is
invalid, and refuses spectra of other functions."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def scripts(bench_script):
    return bench_script("actsearch_fisher_signal"), bench_script("actsearch_quantile_replay")


def _row(name: str, valid: bool, rng, layers=("a", "b")):
    """A function as the signal script's chunk writer takes it."""
    spectra = {layer: torch.tensor(rng.normal(0, 20, 300 + 100 * i))
               for i, layer in enumerate(layers)}
    return name, valid, spectra, rng.random(7) if valid else None


def test_chunks_are_read_in_order_with_invalid_rows_blank(scripts, tmp_path):
    from actfim import layer_quantiles

    signal, replay = scripts
    rng = np.random.default_rng(0)
    first = [_row("f0", True, rng), _row("f1", False, rng), _row("f2", True, rng)]
    second = [_row("f3", False, rng)]  # no valid spectrum: a narrower chunk
    signal._save_chunk(tmp_path / "chunk-000.npz", first)
    signal._save_chunk(tmp_path / "chunk-001.npz", second)
    found = replay.load_spectra(tmp_path, ["f0", "f1", "f2", "f3"])
    assert found["valid"].tolist() == [True, False, True, False]
    assert found["cdf"].shape == (4, 7) and found["quantiles"].shape == (4, 2 * 101)
    for i in (0, 2):
        _, _, spectra, cdf = first[i]
        assert np.array_equal(found["cdf"][i], cdf)
        expected = np.concatenate([layer_quantiles(spectra[k]) for k in ("a", "b")])
        assert np.array_equal(found["quantiles"][i], expected)
    for i in (1, 3):
        assert np.isnan(found["cdf"][i]).all() and np.isnan(found["quantiles"][i]).all()
    with pytest.raises(SystemExit, match="spectra of other functions"):
        replay.load_spectra(tmp_path, ["f0", "f1", "f3", "f2"])
    with pytest.raises(SystemExit, match="no chunk"):
        replay.load_spectra(tmp_path / "empty", ["f0"])
