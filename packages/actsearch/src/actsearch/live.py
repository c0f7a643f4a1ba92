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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from actbench.results import Result
from actcore.console import log
from actcore.errors import ActError
from actcore.lock import exclusive
from actsearch.candidates import prepare
from actsearch.config import SearchConfig
from actsearch.regressors import get_regressor
from actsearch.report import ranking_accuracy, write_search_map
from actsearch.strategies import SearchState, get_strategy
from actsearch.study import Evaluation, Study

__all__ = ["SearchConfig", "run_search", "train_functions"]


#: trainings in flight at once with an automatic stack size: the paper's parallel workers
IN_FLIGHT = 8
#: trainings of one function lost to dead workers before the search stops
MAX_LOST = 3
#: times the worker pool may die while the features are computed before the search stops
MAX_RESTARTS = 3


def train_functions(task: str, functions: list[str], seed: int,
                    overrides: dict) -> list[Result]:
    """A worker's job: its functions through :func:`actbench.train_many`, side by side
    (which decides how: one alone is a plain run)."""
    from actbench.stacked_training import train_many

    return train_many(task, functions, seed, stack=len(functions), **overrides)


def run_search(config: SearchConfig, out: Path, workers: int | None = None,
               scheduler: str | None = None, progress: bool = True,
               stack: int | None = 1) -> list[Evaluation]:
    """Search until ``config.budget`` evaluations are in the study; return them all.
    With ``stack`` K > 1, each free worker gets K suggestions and trains them side by
    side; None stacks where it pays, up to :data:`IN_FLIGHT` trainings in flight in all
    (a surrogate that waits for fewer results suggests better)."""
    from actbench.executors import Pool, parallelism, worker_device
    from actbench.stacked_training import members_per_stack

    strategy = get_strategy(config.strategy)  # names SearchConfig has checked
    device = worker_device(config.device, scheduler)  # a CUDA device missing here fails now
    size = members_per_stack(config.task, device, stack)  # checked before any work
    with exclusive(out / "study.sqlite", "the study"):  # one search of a study at a time
        study = Study(out / "study.sqlite", config.settings())
        try:
            if study.dropped:
                log.warning(f"{study.dropped} training(s) that dead workers broke off in an "
                            "earlier run will run again")
            started = time.perf_counter()
            with Pool(workers, scheduler, device) as pool:
                slots = parallelism(pool.executor)  # on a cluster: its workers, not ours
                if stack is None:  # no more in flight than the paper's parallel workers
                    size = min(size, max(1, IN_FLIGHT // slots))
                features, coords = _features(config, out, pool, progress)
                loop = _Loop.start(config, study, features, coords,
                                   _Run(progress, started, size))
                _train_until_budget(loop, strategy, pool, slots)
            loop.bar.close()
            if loop.suggest_seconds:
                log.info(f"{len(loop.suggest_seconds)} suggestions: median "
                         f"{np.median(loop.suggest_seconds):.2f} s, max "
                         f"{max(loop.suggest_seconds):.2f} s")
            write_search_map(loop.state, loop.names, loop.done, out,
                             f"{config.task}: {int(features.candidates.sum()):,} candidates, "
                             f"{len(loop.done)} evaluations ({config.features} embedding)",
                             config.baselines)
            return loop.done
        finally:
            study.close()


def _features(config: SearchConfig, out: Path, pool, progress: bool):
    """The candidates' features and embedding; a pool that dies is restarted (finished
    feature chunks are kept) up to :data:`MAX_RESTARTS` times."""
    attempt = 1
    while True:
        try:
            features, coords = prepare(config, out, pool.executor, progress,
                                       before_large_embedding=pool.pause)
            if pool.paused:
                pool.resume()
            return features, coords
        except BrokenExecutor as err:
            if attempt == MAX_RESTARTS:
                raise ActError(f"workers died {attempt} times computing features ({err}); "
                               "finished chunks are saved, run the same command again to "
                               "go on") from None
            pool.restart(err)
            attempt += 1


@dataclass(frozen=True)
class _Run:
    """How this run of a search goes (not what the search is: that is its config)."""

    progress: bool
    started: float  # when the run started (perf_counter)
    stack: int  # functions per training job


@dataclass
class _Loop:
    """What the search loop changes as it goes: the surrogate's state, the evaluations,
    the trainings in flight and the ones lost to dead workers."""

    config: SearchConfig
    study: Study
    state: SearchState
    names: list[str]
    baselines: list[int]  # rows, trained first
    overrides: dict  # for actbench.train
    bar: Any
    done: list[Evaluation]
    started: float  # when the search started (perf_counter)
    stack: int = 1  # functions per training job
    pending: dict[Future, list[int]] = field(default_factory=dict)  # a job's rows
    lost: dict[int, int] = field(default_factory=dict)  # per row: trainings lost
    suggest_seconds: list[float] = field(default_factory=list)
    announced: bool = False  # the time to the first suggestion was logged

    @classmethod
    def start(cls, config: SearchConfig, study: Study, features, coords, run: _Run) -> _Loop:
        """The loop over ``features``' candidates, with the study's evaluations so far."""
        from actcore.console import Progress

        regressor = get_regressor(config.regressor)  # a name SearchConfig has checked
        names = features.names
        row_of = {n: i for i, n in enumerate(names)}
        state = SearchState(coords, features.candidates, regressor,
                            np.random.default_rng([config.seed, len(study)]), seed=config.seed)
        done = study.evaluations()
        for e in done:
            state.observed[row_of[e.function]] = e.val_accuracy
        overrides = dict(config.overrides)
        if config.epochs is not None:
            overrides["epochs"] = config.epochs
        if config.normalize:
            overrides["normalize"] = True
        if config.data_root:
            overrides["root"] = config.data_root
        overrides["device"] = config.device
        bar = Progress(total=config.budget, initial=min(len(done), config.budget),
                       desc="search", unit="eval", disable=not run.progress)
        loop = cls(config, study, state, names, [row_of[n] for n in config.baselines],
                   overrides, bar, done, run.started, run.stack)
        loop.show()
        return loop

    def in_flight(self) -> int:
        return sum(len(rows) for rows in self.pending.values())

    def show(self) -> None:
        if self.done:
            best = max(self.done, key=ranking_accuracy)
            self.bar.set_postfix_str(f"best {best.val_accuracy:.4f} {best.function}")


def _train_until_budget(loop: _Loop, strategy, pool, slots: int) -> None:
    """Keep every worker busy with the next suggestions until the budget is spent."""
    config = loop.config
    while len(loop.done) < config.budget:
        _fill_workers(loop, strategy, pool.executor, slots)
        if not loop.pending:
            return  # nothing left to evaluate
        # as they finish (workers never idle), or in submission order: then the surrogate
        # sees the same results in the same order on every run
        oldest = [next(iter(loop.pending))]
        finished, _ = wait(oldest if config.in_order else loop.pending,
                           return_when=FIRST_COMPLETED)
        broken = _collect_finished(loop, finished)
        if broken is not None:  # a dead process broke the whole pool
            pool.restart(broken)


def _fill_workers(loop: _Loop, strategy, executor, slots: int) -> None:
    """Submit jobs of ``loop.stack`` trainings until every worker has one (or the budget
    is all in flight)."""
    config = loop.config
    while free := min((slots - len(loop.pending)) * loop.stack,
                      config.budget - len(loop.done) - loop.in_flight()):
        rows = _next_rows(loop.state, strategy, loop.baselines, free, loop.suggest_seconds)
        if loop.suggest_seconds and not loop.announced:
            loop.announced = True
            log.info(f"first suggestion {time.perf_counter() - loop.started:.1f} s after the "
                     f"search started ({loop.suggest_seconds[0]:.2f} s to suggest)")
        if not rows:
            return
        loop.state.pending.update(rows)
        for start in range(0, len(rows), loop.stack):
            job = rows[start : start + loop.stack]
            names = [loop.names[row] for row in job]
            future = executor.submit(train_functions, config.task, names, config.seed,
                                     loop.overrides)  # fmt: skip
            loop.pending[future] = job


def _collect_finished(loop: _Loop, finished) -> BrokenExecutor | None:
    """Record each finished training as an evaluation, or count it lost when its worker
    died (the row is free to be trained again); the error that broke the pool, if any."""
    broken = None
    for future in finished:
        rows = loop.pending.pop(future)
        loop.state.pending.difference_update(rows)
        try:
            results = future.result()
        except ActError:
            raise
        except Exception as err:  # the worker died, not the function
            for row in rows:
                _lost(loop.lost, loop.names[row], row, err, loop.bar)
            if isinstance(err, BrokenExecutor):
                broken = err
            continue
        for row, result in zip(rows, results, strict=True):
            loop.done.append(loop.study.add(loop.names[row], result))
            loop.state.observed[row] = ranking_accuracy(result)
            loop.bar.update(1)
        loop.show()
    return broken


def _next_rows(state: SearchState, strategy, baselines: list[int], free: int,
               seconds: list[float]) -> list[int]:
    """Baselines first, then the strategy's suggestions until there are ``free`` rows
    (each suggestion's time in ``seconds``): a strategy that proposes one row at a time is
    asked again with its proposals pending, as parallel workers would ask it."""
    rows = [r for r in baselines if r not in state.observed and r not in state.pending][:free]
    state.pending.update(rows)
    try:
        while len(rows) < free:
            start = time.perf_counter()
            new = strategy.suggest(state, free - len(rows)).rows[: free - len(rows)]
            seconds.append(time.perf_counter() - start)
            if not new:
                break
            rows += new
            state.pending.update(new)
    finally:
        state.pending.difference_update(rows)
    return rows


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
