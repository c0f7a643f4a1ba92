"""Output features, normalised or not."""

import numpy as np


def test_normalised_output_features():
    from actcore.normalize import normalization
    from actsearch.features import output_features

    plain = output_features(["relu(x)", "exp(exp(x))"])
    rows = output_features(["relu(x)", "exp(exp(x))"], normalize=True)
    mean, std = normalization("relu(x)")
    np.testing.assert_allclose(rows[0], (plain[0] - mean) / std)
    assert np.isnan(rows[1]).all()  # no moments: not a candidate


def test_the_public_api_resolves():
    import actsearch

    assert len(actsearch.__all__) >= 10
    for name in actsearch.__all__:
        assert getattr(actsearch, name) is not None, name
