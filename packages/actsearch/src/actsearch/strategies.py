"""Search strategies: which function(s) to evaluate next.

A :class:`Strategy` maps the search state to a :class:`Suggestion`; strategies are
registered through the ``act_strategies`` hook. Built-ins (the published search):
``random`` searches every function (no Fisher filtering); ``surrogate`` fits the
regressor on the evaluated functions and suggests the top prediction; ``surrogate-batch``
suggests the top k predictions from k distinct equivalence classes, for k parallel workers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from actsearch.regressors import Regressor


@dataclass
class SearchState:
    """What a strategy sees. Rows index every function of the search space.

    ``coords`` holds each row's embedding (NaN for non-candidates), ``candidates`` the
    rows the surrogate may suggest, ``observed`` the accuracies measured so far,
    ``pending`` rows being evaluated now and ``classes`` an equivalence-class id per row
    (two rows of one class are never suggested together or after each other).
    """

    coords: np.ndarray
    candidates: np.ndarray
    regressor: Regressor
    rng: np.random.Generator
    observed: dict[int, float] = field(default_factory=dict)
    pending: set[int] = field(default_factory=set)
    classes: np.ndarray | None = None
    seed: int = 0

    def free(self, restrict: bool) -> np.ndarray:
        """Rows neither evaluated nor pending, in no taken class (``restrict``: candidates)."""
        taken = np.fromiter([*self.observed, *self.pending], dtype=np.intp)
        mask = self.candidates.copy() if restrict else np.ones(len(self.coords), bool)
        if self.classes is None:
            mask[taken] = False
        else:
            mask &= ~np.isin(self.classes, self.classes[taken])
        return mask


@dataclass(frozen=True)
class Suggestion:
    """Rows to evaluate next; surrogates also give their predictions on ``predicted``."""

    rows: list[int]
    predicted: np.ndarray | None = None
    predictions: np.ndarray | None = None


@dataclass(frozen=True)
class Strategy:
    """A named strategy; ``suggest(state, k)`` proposes up to ``k`` rows."""

    name: str
    suggest: Callable[[SearchState, int], Suggestion]
    filtered: bool = True
    description: str = ""


def distinct_classes(rows: np.ndarray, classes: np.ndarray | None, k: int) -> list[int]:
    """The first ``k`` of ``rows`` with no two in one equivalence class."""
    if classes is None:
        return [int(r) for r in rows[:k]]
    chosen: list[int] = []
    seen: set[int] = set()
    for row in rows:
        c = int(classes[row])
        if c not in seen:
            seen.add(c)
            chosen.append(int(row))
            if len(chosen) == k:
                break
    return chosen


def random_suggest(state: SearchState, k: int) -> Suggestion:
    free = np.flatnonzero(state.free(restrict=False))
    return Suggestion(distinct_classes(state.rng.permutation(free), state.classes, k))


def predict_free(state: SearchState) -> tuple[np.ndarray, np.ndarray]:
    """Fit the regressor on observed candidates; predict on free candidates (z-scored)."""
    free = np.flatnonzero(state.free(restrict=True))
    if len(free) == 0:
        return free, np.empty(0)
    fitted = _fit(state)
    if fitted is None:  # nothing to learn from yet: every candidate looks alike
        return free, np.zeros(len(free))
    return free, fitted[0](state.coords[free])


def predicted_accuracy(state: SearchState) -> np.ndarray:
    """The regressor's accuracy for every candidate (NaN elsewhere, or before any
    candidate has been observed), fitted on all observations."""
    out = np.full(len(state.coords), np.nan)
    fitted = _fit(state)
    if fitted is not None:
        predict, mean, std = fitted
        rows = np.flatnonzero(state.candidates)
        out[rows] = predict(state.coords[rows]) * std + mean
    return out


def _fit(state: SearchState):
    """The regressor fitted on the observed candidates: (predict, mean, std), where
    ``predict`` gives z-scored accuracies; None before any observation."""
    seen = np.array([r for r in state.observed if state.candidates[r]], dtype=np.intp)
    if len(seen) == 0:
        return None
    y = np.array([state.observed[r] for r in seen], dtype=np.float64)
    # z-scored targets: rankings of KNR/RFR are unchanged, while SVR's epsilon tube and
    # GPR's unit-amplitude prior kernel meet accuracies on the scale they assume.
    mean, std = y.mean(), (y.std() or 1.0)
    model = state.regressor.make(state.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # GPR/SVR on few points
        model.fit(state.coords[seen], (y - mean) / std)

    def predict(coords: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return np.asarray(model.predict(coords), dtype=np.float64).ravel()

    return predict, mean, std


def _ranked(state: SearchState, free: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Free rows by decreasing prediction; ties broken at random (not by row order)."""
    order = np.lexsort((state.rng.random(len(free)), -np.nan_to_num(pred, nan=-np.inf)))
    return free[order]


def surrogate_suggest(state: SearchState, k: int) -> Suggestion:
    free, pred = predict_free(state)
    return Suggestion(distinct_classes(_ranked(state, free, pred), state.classes, 1), free, pred)


def surrogate_batch_suggest(state: SearchState, k: int) -> Suggestion:
    free, pred = predict_free(state)
    return Suggestion(distinct_classes(_ranked(state, free, pred), state.classes, k), free, pred)


def builtin_strategies() -> list[Strategy]:
    return [
        Strategy("random", random_suggest, filtered=False,
                 description="uniformly random unevaluated functions (no filtering)"),
        Strategy("surrogate", surrogate_suggest,
                 description="the regressor's top prediction"),
        Strategy("surrogate-batch", surrogate_batch_suggest,
                 description="top-k predictions from k distinct equivalence classes"),
    ]


def get_strategy(name: str) -> Strategy:
    """The registered strategy ``name`` (an error lists close names)."""
    from actcore.plugins import registry
    from actsearch.hookspecs import STRATEGIES

    return registry(STRATEGIES).get(name)
