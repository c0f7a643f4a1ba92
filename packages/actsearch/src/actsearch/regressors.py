"""Surrogate regressors: predict validation accuracy from 2-D embedding coordinates.

A :class:`Regressor` is a named factory of scikit-learn-style estimators (``fit``,
``predict``), registered through the ``act_regressors`` hook; third-party packages add
their own the same way. Built-ins follow the published method: scikit-learn defaults, except KNR's
k=3 with distance weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


class Estimator(Protocol):
    def fit(self, X: Any, y: Any) -> Any: ...

    def predict(self, X: Any) -> Any: ...


@dataclass(frozen=True)
class Regressor:
    """A named surrogate; ``make(seed)`` returns a fresh, unfitted estimator."""

    name: str
    make: Callable[[int], Estimator]
    description: str = ""


def _knr(seed: int) -> Estimator:
    from sklearn.neighbors import KNeighborsRegressor

    return _AtMostN(KNeighborsRegressor(n_neighbors=3, weights="distance"))


def _rfr(seed: int) -> Estimator:
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(random_state=seed)


def _svr(seed: int) -> Estimator:
    from sklearn.svm import SVR

    return SVR()


def _gpr(seed: int) -> Estimator:
    from sklearn.gaussian_process import GaussianProcessRegressor

    return GaussianProcessRegressor(random_state=seed)


class _AtMostN:
    """KNR with k capped at the number of training points (early in a search)."""

    def __init__(self, model: Any):
        self.model = model

    def fit(self, X: Any, y: Any) -> _AtMostN:
        self.model.set_params(n_neighbors=min(3, len(X)))
        self.model.fit(X, y)
        return self

    def predict(self, X: Any) -> Any:
        return self.model.predict(X)


def builtin_regressors() -> list[Regressor]:
    return [
        Regressor("knr", _knr, "k-nearest neighbours, k=3, distance-weighted"),
        Regressor("rfr", _rfr, "random forest (scikit-learn defaults)"),
        Regressor("svr", _svr, "support vector regression (scikit-learn defaults)"),
        Regressor("gpr", _gpr, "Gaussian process regression (scikit-learn defaults)"),
    ]


def get_regressor(name: str) -> Regressor:
    """The registered regressor ``name`` (an error lists close names)."""
    from actcore.plugins import registry
    from actsearch.hookspecs import REGRESSORS

    return registry(REGRESSORS).get(name)
