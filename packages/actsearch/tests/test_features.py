"""Output features, normalised or not."""

import numpy as np
import pytest


def test_normalised_output_features():
    from actcore.normalize import normalization
    from actsearch.features import output_features

    plain = output_features(["relu(x)", "exp(exp(x))"])
    rows = output_features(["relu(x)", "exp(exp(x))"], normalize=True)
    mean, std = normalization("relu(x)")
    # in float64, rounded once to the rows' float32
    expected = ((plain[0].astype(np.float64) - mean) / std).astype(np.float32)
    np.testing.assert_array_equal(rows[0], expected)
    assert np.isnan(rows[1]).all()  # no moments: not a candidate


def test_the_public_api_resolves():
    import actsearch

    assert len(actsearch.__all__) >= 10
    for name in actsearch.__all__:
        assert getattr(actsearch, name) is not None, name


def test_the_scalable_embedding_path_never_builds_a_distance_matrix(monkeypatch):
    """Nearest-neighbour descent, forced on 3,000 points (where exact distances would be
    used): same metrics and neighbours, no n x n matrix, and clusters stay apart."""
    import sklearn.metrics
    import umap  # imported before the patch: its own binding stays real for later tests

    from actsearch.embedding import EXACT_UP_TO, compute_embedding, scalable

    assert umap.UMAP

    assert not scalable(EXACT_UP_TO) and scalable(EXACT_UP_TO + 1)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 1000)
    centres = rng.normal(scale=8.0, size=(3, 40))
    outputs = centres[labels] + rng.normal(size=(3000, 40))
    fisher = np.clip(np.sort(rng.random((3000, 30)), axis=1) + 0.3 * labels[:, None], 0, 1)

    def no_matrix(*args, **kwargs):
        raise AssertionError("an n x n distance matrix was computed")

    monkeypatch.setattr(sklearn.metrics, "pairwise_distances", no_matrix)
    coords = compute_embedding({"outputs": outputs, "fisher": fisher}, "union", seed=0,
                               approximate=True)
    assert coords.shape == (3000, 2) and np.isfinite(coords).all()
    # each point's 10 nearest neighbours in the plane share its cluster
    from sklearn.neighbors import NearestNeighbors

    _, near = NearestNeighbors(n_neighbors=11).fit(coords).kneighbors(coords)
    purity = (labels[near[:, 1:]] == labels[:, None]).mean()
    assert purity > 0.95, purity


def test_union_layout_is_umap_learns_at_seed_0_and_follows_the_seed():
    """umap-learn lays out ``a + b`` from a fixed RandomState(42) whatever the models'
    seeds (umap-learn 0.5.12); act's union layout is that very layout at seed 0, step by
    step with umap-learn's functions, and another one at seed 1."""
    import warnings

    from actsearch.embedding import _fuzzy_model, compute_embedding

    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 60)
    rows = {"outputs": rng.normal(scale=6.0, size=(3, 20))[labels] + rng.normal(size=(180, 20)),
            "fisher": np.sort(rng.random((180, 12)), axis=1)}

    import umap.umap_

    fixed = umap.umap_.check_random_state

    def umap_learns(seed: int) -> np.ndarray:
        """umap-learn's own ``a + b``, its fixed layout seed 42 moved to 42 + seed."""
        models = [_fuzzy_model(rows[kind], kind, seed, False, None)
                  for kind in ("outputs", "fisher")]
        with warnings.catch_warnings(), pytest.MonkeyPatch.context() as patch:
            warnings.simplefilter("ignore")
            patch.setattr(umap.umap_, "check_random_state",
                          lambda state: fixed(42 + seed if state == 42 else state))
            return (models[0] + models[1]).embedding_

    zero, one = (compute_embedding(rows, "union", seed) for seed in (0, 1))
    np.testing.assert_array_equal(zero, umap_learns(0))
    np.testing.assert_array_equal(one, umap_learns(1))
    assert np.abs(one - zero).max() > 1.0  # and seed 1 is another layout
