"""Shepard's inverse-distance-weighted regressor as an actsearch surrogate.

Unlike KNR (3 neighbours), every evaluated function votes, with weight 1/distance^power.
"""

from __future__ import annotations

import numpy as np

from actcore import hookimpl
from actsearch.regressors import Regressor


class InverseDistance:
    """Predict the 1/d^power-weighted mean of all training targets (exact at d=0)."""

    def __init__(self, power: float = 2.0):
        self.power = power

    def fit(self, X, y) -> InverseDistance:
        self.X_ = np.asarray(X, dtype=np.float64)
        self.y_ = np.asarray(y, dtype=np.float64)
        return self

    def predict(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        d = np.sqrt(((X[:, None, :] - self.X_[None, :, :]) ** 2).sum(-1))
        exact = d == 0
        with np.errstate(divide="ignore"):
            w = np.where(exact, 0.0, d ** -self.power)
        pred = (w @ self.y_) / w.sum(1)
        hit = exact.any(1)
        pred[hit] = (exact[hit] @ self.y_) / exact[hit].sum(1)
        return pred


@hookimpl
def act_regressors() -> list[Regressor]:
    return [Regressor("idw", lambda seed: InverseDistance(), "inverse-distance weighting")]
