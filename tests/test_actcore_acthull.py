"""actcore with acthull's learnable operators installed beside it."""

from __future__ import annotations

import pytest

import actcore
from actcore import ActError


def test_learnable_expressions_cannot_be_normalised():
    """A hull's coefficients change while it trains, so no fixed Gaussian moments exist."""
    assert "convex_n" in actcore.plugins.registry(actcore.plugins.OPERATORS)
    with pytest.raises(ActError, match="learnable"):
        actcore.to_module("convex_n(identity(x),relu(x))", normalize=True)
    assert actcore.to_module("convex_n(identity(x),relu(x))") is not None
