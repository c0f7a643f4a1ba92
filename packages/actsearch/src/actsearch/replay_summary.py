"""What replayed trials show: best-so-far and rank-correlation curves, and a summary per
algorithm (final accuracy, evaluations needed to beat the start, to reach the top 1%)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from actsearch.replay import Algorithm, Problem, Trial


class Summary(BaseModel):
    """Per-algorithm figures over the trials (evaluations counted from 1)."""

    algorithm: str
    trials: int
    embeddings: int
    final_best_mean: float
    evals_to_beat_relu: float
    beat_relu_fraction: float
    evals_to_top1pct: float
    top1pct_fraction: float
    evals_to_best: float
    best_fraction: float
    spearman_mean: float


def best_curves(trials: Sequence[Trial]) -> np.ndarray:
    """Best-so-far curves as rows; a trial that ran out of functions keeps its best."""
    length = max(len(t.best) for t in trials)
    return np.array([np.pad(t.best, (0, length - len(t.best)), mode="edge") for t in trials])


def spearman_curves(trials: Sequence[Trial]) -> np.ndarray:
    """Per-step Spearman correlations as rows, NaN-padded to the longest trial."""
    length = max(len(t.spearman) for t in trials)
    return np.array([np.pad(t.spearman, (0, length - len(t.spearman)),
                            constant_values=np.nan) for t in trials])


def _first_reach(curves: np.ndarray, threshold: float, strict: bool) -> np.ndarray:
    """Per trial, the 1-based evaluation at which the curve reaches ``threshold``."""
    hit = curves > threshold if strict else curves >= threshold - 1e-12
    first = np.argmax(hit, axis=1).astype(float) + 1
    first[~hit.any(axis=1)] = np.nan
    return first


def summarise(
    problem: Problem, algorithm: Algorithm, trials: Sequence[Trial]
) -> Summary:
    """Mean evaluations to beat ReLU, reach the top 1% and the best; mean Spearman."""
    curves = best_curves(trials)
    finite = problem.accuracy[np.isfinite(problem.accuracy)]
    top1 = float(np.quantile(finite, 0.99))
    best = float(finite.max())

    def stat(values: np.ndarray) -> tuple[float, float]:
        reached = np.isfinite(values)
        return (float(values[reached].mean()) if reached.any() else math.nan,
                float(reached.mean()))

    relu = stat(_first_reach(curves, problem.start_accuracy, strict=True))
    t1 = stat(_first_reach(curves, top1, strict=False))
    tb = stat(_first_reach(curves, best, strict=False))
    rho = np.concatenate([t.spearman for t in trials])
    return Summary(
        algorithm=algorithm.label, trials=len(trials), embeddings=len(problem.layouts),
        final_best_mean=float(curves[:, -1].mean()),
        evals_to_beat_relu=relu[0], beat_relu_fraction=relu[1],
        evals_to_top1pct=t1[0], top1pct_fraction=t1[1],
        evals_to_best=tb[0], best_fraction=tb[1],
        spearman_mean=float(np.nanmean(rho)) if np.isfinite(rho).any() else math.nan,
    )
