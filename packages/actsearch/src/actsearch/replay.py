"""Replay searches on a benchmark table, where evaluating a function is a lookup.

The published protocol: evaluate ReLU and 7 random functions, then repeatedly fit the
regressor on what was evaluated and evaluate the top prediction, up to the budget.
A surrogate sees the functions through one UMAP embedding, and a different seed lays them
out differently; so a problem holds several embeddings (layouts) and the trials take them
in turn, and the statistics are over embeddings as well as starts.
Trials run in parallel processes; each finished chunk of trials is saved at once, so an
interrupted replay resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from actcore.atomic import atomic_path
from actcore.errors import ActError
from actcore.lifetime import exit_with_parent
from actsearch.embedding import embed
from actsearch.features import Features, chance_filled, check_feature_set
from actsearch.regressors import get_regressor
from actsearch.strategies import SearchState, get_strategy

START = "relu(x)"
N_RANDOM_START = 7
CHUNK = 5  # trials per parallel job and per saved file


@dataclass(frozen=True)
class Problem:
    """A table prepared for replay under one feature set.

    ``layouts`` holds one embedding per seed, shape (embeddings, functions, 2), with a
    row per function (NaN where the function is not a candidate); ``accuracy`` is
    validation accuracy with failed runs at chance.
    """

    names: list[str]
    accuracy: np.ndarray
    layouts: np.ndarray
    candidates: np.ndarray
    start: int | None

    @property
    def key(self) -> str:
        """A digest of the problem, so saved trials are never reused for another table."""
        digest = hashlib.sha256("\n".join(self.names).encode())
        for array in (self.accuracy, self.layouts, self.candidates):
            digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(str(self.start).encode())
        return digest.hexdigest()[:12]

    @property
    def start_accuracy(self) -> float:
        return math.nan if self.start is None else float(self.accuracy[self.start])


@dataclass(frozen=True)
class Algorithm:
    """What one replay curve runs: a strategy, a regressor and a feature set, each checked
    once, here (an unknown name is an error listing the known ones)."""

    strategy: str
    regressor: str
    features: str

    def __post_init__(self) -> None:
        get_strategy(self.strategy)
        get_regressor(self.regressor)
        check_feature_set(self.features)

    @property
    def label(self) -> str:
        if self.strategy == "random":
            return "random"
        suffix = "" if self.strategy == "surrogate" else f" [{self.strategy}]"
        return f"{self.regressor.upper()} ({self.features}){suffix}"


@dataclass(frozen=True)
class Trial:
    """One trial's evaluated rows, best-so-far curve and per-step Spearman correlation."""

    rows: np.ndarray
    best: np.ndarray
    spearman: np.ndarray


def run_trial(problem: Problem, algorithm: Algorithm, budget: int, seed: int,
              layout: int = 0) -> Trial:
    """One replay: ReLU + 7 random functions, then the strategy's suggestions, with the
    problem's embedding number ``layout``."""
    strategy = get_strategy(algorithm.strategy)
    rng = np.random.default_rng(seed)
    state = SearchState(
        coords=problem.layouts[layout], candidates=problem.candidates,
        regressor=get_regressor(algorithm.regressor), rng=rng, seed=seed,
    )
    budget = min(budget, int(state.free(restrict=strategy.filtered).sum()))
    order: list[int] = []
    spearman = np.full(budget, np.nan)

    def evaluate(row: int) -> None:
        order.append(row)
        state.observed[row] = float(problem.accuracy[row])

    if problem.start is not None and budget:
        evaluate(problem.start)
    pool = np.flatnonzero(state.free(restrict=strategy.filtered))
    for row in rng.permutation(pool)[: min(N_RANDOM_START + 1, budget) - len(order)]:
        evaluate(int(row))
    while len(order) < budget:
        suggestion = strategy.suggest(state, 1)
        if not suggestion.rows:
            break
        if suggestion.predictions is not None and len(suggestion.predicted) > 2:
            truth = problem.accuracy[suggestion.predicted]
            if np.ptp(suggestion.predictions) > 0 and np.ptp(truth) > 0:
                spearman[len(order)] = spearmanr(suggestion.predictions, truth).statistic
        evaluate(suggestion.rows[0])
    rows = np.array(order, dtype=np.intp)
    best = np.maximum.accumulate(problem.accuracy[rows]) if len(rows) else np.empty(0)
    return Trial(rows, best, spearman[: len(rows)])


_PROBLEMS: dict[str, Problem] = {}


def _init_worker(problems: dict[str, Problem], parent: int | None = None) -> None:
    if parent is not None:
        exit_with_parent(parent)  # no orphan workers after a kill -9 of the replay
    _PROBLEMS.update(problems)


def _run_chunk(algorithm: Algorithm, budget: int, trials: list[int], first_seed: int
               ) -> list[Trial]:
    problem = _PROBLEMS[algorithm.features]
    return [run_trial(problem, algorithm, budget, first_seed + i, layout_of(problem, i))
            for i in trials]


def layout_of(problem: Problem, trial: int) -> int:
    """The embedding trial number ``trial`` runs on: the problem's layouts in turn."""
    return trial % len(problem.layouts)


def prepare(table, features: Features, feature_set: str, seed: int = 0,
            cache: Path | bool | None = True, embeddings: int = 1) -> Problem:
    """A table's replay problem: ``embeddings`` embeddings of the candidates (seeds
    ``seed``, ``seed + 1``, ...), accuracies, ReLU's row."""
    if embeddings < 1:
        raise ActError(f"--embeddings must be at least 1, got {embeddings}")
    names = table.names()
    if features.names != names:
        raise ValueError("features must be computed for the table's rows, in order")
    layouts = np.full((embeddings, len(names), 2), np.nan)
    candidates = features.candidates
    for k in range(embeddings):
        layouts[k, candidates] = embed(features, feature_set, seed=seed + k, cache=cache)
    accuracy = chance_filled([table.records[n].val_accuracy for n in names], table.chance)
    return Problem(names, accuracy, layouts, candidates, _start_row(table, features))


def _start_row(table, features: Features) -> int | None:
    """ReLU's row: by name (any equivalent), else the row with ReLU's exact outputs."""
    if START in table:
        return table.names().index(table.canonical(START))
    return features.rows_like([START]).get(START)


def replay(
    problems: dict[str, Problem],
    algorithms: Sequence[Algorithm],
    trials: int,
    budget: int,
    seed: int = 0,
    jobs: int | None = None,
    checkpoint: Path | None = None,
    progress: bool = True,
) -> dict[Algorithm, list[Trial]]:
    """Run ``trials`` seeded trials of each algorithm; trial i uses seed ``seed + i`` and
    its problem's embedding :func:`layout_of` i.

    ``jobs`` processes (default: all cores; 1 runs in this process). With
    ``checkpoint``, each finished chunk is saved there and skipped when run again.
    """
    from actcore.console import Progress

    if trials < 1 or budget < 1:
        raise ActError("--trials and --budget must be at least 1")
    for algorithm in algorithms:
        if algorithm.features not in problems:
            raise ActError(f"no problem prepared for feature set {algorithm.features!r}")
    jobs = jobs or os.cpu_count() or 1
    work = [
        (a, list(range(i, min(i + CHUNK, trials))))
        for a in algorithms for i in range(0, trials, CHUNK)
    ]

    def path(algorithm: Algorithm, numbers: list[int]) -> Path | None:
        if checkpoint is None:
            return None
        name = f"{algorithm.strategy}-{algorithm.regressor}-{algorithm.features}"
        key = problems[algorithm.features].key
        first, last = seed + numbers[0], seed + numbers[-1]
        return checkpoint / f"{name}-{key}-b{budget}-s{first}-{last}.npz"

    results: dict[tuple[Algorithm, int], list[Trial]] = {}
    todo = []
    for algorithm, numbers in work:
        saved = _load(path(algorithm, numbers), len(numbers))
        if saved is not None:
            results[algorithm, numbers[0]] = saved
        else:
            todo.append((algorithm, numbers))
    done = sum(len(numbers) for (a, numbers) in work if (a, numbers[0]) in results)
    bar = Progress(total=len(algorithms) * trials, initial=done, unit="trial", desc="replay",
               disable=not progress)

    def finish(algorithm: Algorithm, numbers: list[int], trials: list[Trial]) -> None:
        _save(path(algorithm, numbers), trials)
        results[algorithm, numbers[0]] = trials
        bar.update(len(numbers))

    if jobs == 1:
        _init_worker(problems)
        for algorithm, numbers in todo:
            finish(algorithm, numbers, _run_chunk(algorithm, budget, numbers, seed))
    elif todo:
        with ProcessPoolExecutor(jobs, initializer=_init_worker,
                                 initargs=(problems, os.getpid())) as pool:
            futures = {pool.submit(_run_chunk, a, budget, n, seed): (a, n) for a, n in todo}
            for future in as_completed(futures):
                finish(*futures[future], future.result())
    bar.close()
    return {
        a: [t for b, numbers in work if b == a for t in results[a, numbers[0]]]
        for a in algorithms
    }


def _load(path: Path | None, count: int) -> list[Trial] | None:
    """Saved trials of one chunk, or None when absent or unreadable."""
    if path is None:
        return None
    try:
        with np.load(path) as data:
            return [
                Trial(data[f"rows{i}"], data[f"best{i}"], data[f"rho{i}"]) for i in range(count)
            ]
    except (OSError, KeyError, ValueError):
        return None


def _save(path: Path | None, trials: list[Trial]) -> None:
    """Save one chunk's trials atomically."""
    if path is None:
        return
    arrays = {}
    for i, t in enumerate(trials):
        arrays |= {f"rows{i}": t.rows, f"best{i}": t.best, f"rho{i}": t.spearman}
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        np.savez(fh, **arrays)
