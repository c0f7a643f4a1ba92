"""Live search on a task: train the surrogate's picks until the budget is spent.

``act search run --task mlp-digits --space 'binary(unary(x),unary(x))' --budget 50``:
the candidates and their embedding come from :mod:`actsearch.candidates`; then the
baselines and the strategy's suggestions are trained through actbench on a
``concurrent.futures`` executor (local processes, or Dask with ``--scheduler``). Rows of
the search are equivalence classes, so two workers never train two members of one class.
Every finished training is committed to the study file, and running the same command
again resumes.
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Future, wait
from pathlib import Path

import numpy as np

from actbench.train import Result
from actcore.console import log
from actcore.errors import ActError
from actcore.lock import exclusive
from actsearch.candidates import prepare
from actsearch.config import SearchConfig
from actsearch.features import check_feature_set
from actsearch.regressors import get_regressor
from actsearch.report import ranking_accuracy, write_search_map
from actsearch.strategies import SearchState, get_strategy
from actsearch.study import Evaluation, Study

__all__ = ["SearchConfig", "run_search", "train_one"]


def train_one(task: str, function: str, seed: int, overrides: dict) -> Result:
    """A worker's job: one training run through actbench."""
    from actbench import train

    return train(task, function, seed, **overrides)


def run_search(config: SearchConfig, out: Path, workers: int | None = None,
               scheduler: str | None = None, progress: bool = True) -> list[Evaluation]:
    """Search until ``config.budget`` evaluations are in the study; return them all."""
    from actbench.executors import Pool, default_workers
    from actcore.console import Progress

    strategy = get_strategy(config.strategy)
    regressor = get_regressor(config.regressor)
    check_feature_set(config.features)
    with exclusive(out / "study.sqlite", "the study"):  # one search of a study at a time
        study = Study(out / "study.sqlite", config.settings())
        if study.dropped:
            log.warning(f"{study.dropped} training(s) that dead workers broke off in an "
                        "earlier run will run again")
        slots = max(1, default_workers() if workers is None else workers)
        started = time.perf_counter()
        try:
            with Pool(workers, scheduler) as pool:
                executor = pool.executor
                for attempt in range(1, MAX_LOST + 1):  # finished feature chunks are kept
                    try:
                        features, coords = prepare(config, out, executor, progress,
                                                   before_large_embedding=pool.pause)
                        executor = pool.resume() if pool.paused else executor
                        break
                    except BrokenExecutor as err:
                        if attempt == MAX_LOST:
                            raise ActError(f"workers died {attempt} times computing features "
                                           f"({err}); finished chunks are saved, run the "
                                           "same command again to go on") from None
                        executor = pool.restart(err)
                names = features.names
                row_of = {n: i for i, n in enumerate(names)}
                state = SearchState(coords, features.candidates, regressor,
                                    np.random.default_rng([config.seed, len(study)]),
                                    seed=config.seed)
                done = study.evaluations()
                for e in done:
                    state.observed[row_of[e.function]] = e.val_accuracy
                baselines = [row_of[n] for n in config.baselines]
                overrides = {} if config.epochs is None else {"epochs": config.epochs}
                if config.normalize:
                    overrides["normalize"] = True
                if config.data_root:
                    overrides["root"] = config.data_root
                bar = Progress(total=config.budget, initial=min(len(done), config.budget),
                           desc="search", unit="eval", disable=not progress)
                _show(bar, done)
                pending: dict[Future, int] = {}
                suggest_seconds: list[float] = []
                first_suggestion: list[float] = []
                lost: dict[int, int] = {}  # per row: trainings lost to dead workers
                while len(done) < config.budget:
                    # fill every free worker; "surrogate" suggests one function per call
                    while free := min(slots - len(pending),
                                      config.budget - len(done) - len(pending)):
                        rows = _next_rows(state, strategy, baselines, free, suggest_seconds)
                        if len(suggest_seconds) == 1 and not first_suggestion:
                            first_suggestion.append(time.perf_counter() - started)
                            log.info(f"first suggestion {first_suggestion[0]:.1f} s after "
                                     f"the search started ({suggest_seconds[0]:.2f} s to "
                                     "suggest)")
                        if not rows:
                            break
                        for row in rows:
                            state.pending.add(row)
                            future = executor.submit(train_one, config.task, names[row],
                                                     config.seed, overrides)
                            pending[future] = row
                    if not pending:
                        break  # nothing left to evaluate
                    # as they finish (workers never idle), or in submission order: then the
                    # surrogate sees the same results in the same order on every run
                    oldest = [next(iter(pending))]
                    finished, _ = wait(oldest if config.in_order else pending,
                                       return_when=FIRST_COMPLETED)
                    broken: BrokenExecutor | None = None
                    for future in finished:
                        row = pending.pop(future)
                        state.pending.discard(row)
                        try:
                            result = future.result()
                        except ActError:
                            raise
                        except Exception as err:  # the worker died, not the function
                            _lost(lost, names[row], row, err, bar)
                            if isinstance(err, BrokenExecutor):
                                broken = err
                            continue  # not a result: the row is free to be trained again
                        done.append(study.add(names[row], result))
                        state.observed[row] = ranking_accuracy(result)
                        bar.update(1)
                        _show(bar, done)
                    if broken is not None:  # a dead process broke the whole pool
                        executor = pool.restart(broken)
            bar.close()
            if suggest_seconds:
                log.info(f"{len(suggest_seconds)} suggestions: median "
                         f"{np.median(suggest_seconds):.2f} s, max {max(suggest_seconds):.2f} s")
            write_search_map(state, names, done, out,
                             f"{config.task}: {int(features.candidates.sum()):,} candidates, "
                             f"{len(done)} evaluations ({config.features} embedding)",
                             config.baselines)
            return done
        finally:
            study.close()


def _next_rows(state: SearchState, strategy, baselines: list[int], free: int,
               seconds: list[float]) -> list[int]:
    """Baselines first, then the strategy's suggestions (each one's time in ``seconds``)."""
    rows = [r for r in baselines if r not in state.observed and r not in state.pending][:free]
    if len(rows) < free:
        if rows:
            state.pending.update(rows)
        start = time.perf_counter()
        try:
            rows += strategy.suggest(state, free - len(rows)).rows
        finally:
            state.pending.difference_update(rows)
        seconds.append(time.perf_counter() - start)
    return rows[:free]


MAX_LOST = 3  # trainings of one function lost to dead workers before the search stops


def _lost(lost: dict[int, int], function: str, row: int, err: Exception, bar) -> None:
    """Count a training lost to its worker; past :data:`MAX_LOST`, stop the search."""
    lost[row] = lost.get(row, 0) + 1
    reason = f"{type(err).__name__}: {err}"
    if lost[row] >= MAX_LOST:
        raise ActError(
            f"training {function} was lost {lost[row]} times to failing workers ({reason}); "
            "stopping. Finished trainings are saved: run the same command again to go on"
        )
    bar.write(f"retrying {function}: its worker failed ({reason})")


def _show(bar, done: list[Evaluation]) -> None:
    if done:
        best = max(done, key=lambda e: ranking_accuracy(e))
        bar.set_postfix_str(f"best {best.val_accuracy:.4f} {best.function}")
