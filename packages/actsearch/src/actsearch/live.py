"""Live search on a task: features, embedding, then training the surrogate's picks.

``act search run --task mlp-digits --space 'binary(unary(x),unary(x))' --budget 50``:
every unique function of the space (one per equivalence class, the eight published baseline
functions added) gets output features; candidates with finite outputs get Fisher
features from actfim (in parallel chunks, each resumable in its SQLite file); the union
embedding is computed once; then the baselines and the strategy's suggestions are trained through
actbench on a ``concurrent.futures`` executor (local processes, or Dask with
``--scheduler``). Rows of the search are equivalence classes, so two workers never train
two members of one class. Every finished training is committed to the study file, and
running the same command again resumes.
"""

from __future__ import annotations

import argparse
import math
import time
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Future, as_completed, wait
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from actcore.cli import add_normalize, add_operators, add_output, output_path
from actcore.console import log
from actcore.errors import ActError
from actcore.lock import exclusive
from actcore.readable import readable
from actsearch.features import BASELINES, Features, check_feature_set, output_features
from actsearch.regressors import get_regressor
from actsearch.strategies import SearchState, get_strategy
from actsearch.study import Evaluation, Study


class SearchConfig(BaseModel):
    """Everything that defines a live search (stored in the study file)."""

    task: str
    space: list[str]
    operators: list[str] | None = None
    budget: int = Field(50, ge=1)
    regressor: str = "knr"
    strategy: str = "surrogate"
    features: str = "union"
    seed: int = Field(0, ge=0)
    epochs: int | None = Field(None, ge=1)
    fisher_batch: int = Field(32, ge=1)
    data_root: str | None = None
    in_order: bool = Field(False, description="take results in submission order")
    normalize: bool = Field(False, description="search normalised activation functions")

    def settings(self) -> dict:
        """What must match for a study file to be resumed (not budget: it may grow)."""
        return self.model_dump(exclude={"budget", "data_root", "in_order"})


def unique_functions(config: SearchConfig, progress: bool = False) -> list[str]:
    """One name per equivalence class of the space plus the baselines, baselines first."""
    from actcore import Space, equivalence_classes

    space = Space(*config.space, operators=config.operators)
    classes = equivalence_classes(space, progress=progress)
    names = [*BASELINES, *classes.representatives]
    return equivalence_classes(names).representatives


FISHER_CHUNK = 64  # functions per Fisher job (and per resumable store file)


def fisher_cdfs(config: SearchConfig, names: list[str], store: str) -> list[list[float]]:
    """A worker's job: Fisher CDFs of ``names`` ([] if invalid), resumable in ``store``."""
    import torch

    from actbench import get_task
    from actbench.hookspecs import DATASETS, MODELS
    from actcore.plugins import registry
    from actfim.batch import spectra_for_activations

    task = get_task(config.task)
    source = registry(DATASETS).get(task.dataset)
    architecture = registry(MODELS).get(task.model)
    data = source.load("train", config.data_root, False, augment=False)
    size = min(config.fisher_batch, len(data))
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(config.seed))
    pairs = [data[int(i)] for i in order[:size]]
    inputs = torch.stack([torch.as_tensor(x, dtype=torch.float32) for x, _ in pairs])
    targets = torch.as_tensor([int(y) for _, y in pairs])

    def make_model(activation: torch.nn.Module) -> torch.nn.Module:
        return architecture.build(lambda: activation, source.input_shape, source.num_classes)

    def spectra(batch: list[str]) -> list[list[float]]:
        records = spectra_for_activations(
            make_model, batch, inputs, targets, store=store, seed=config.seed, progress=False,
            normalize=config.normalize,
        )
        return [records[n].cdf or [] for n in batch]

    try:
        return spectra(names)
    except Exception:
        # A failed spectrum computation marks its function invalid; one that
        # raises (e.g. eigh not converging) must not sink the chunk: redo it one by one,
        # the finished ones coming back from the store.
        cdfs = []
        for name in names:
            try:
                cdfs += spectra([name])
            except Exception:
                cdfs.append([])
        return cdfs


def _fisher_rows(config: SearchConfig, names: list[str], out: Path, executor,
                 progress: bool) -> np.ndarray:
    """Fisher CDF rows (NaN for invalid spectra), in parallel chunks stored under ``out``."""
    from actcore.console import Progress
    from actsearch.features import fisher_matrix

    chunks = [names[i : i + FISHER_CHUNK] for i in range(0, len(names), FISHER_CHUNK)]
    futures = {
        executor.submit(fisher_cdfs, config, chunk,
                        str(out / "fisher" / f"chunk-{i:05d}.sqlite")): i
        for i, chunk in enumerate(chunks)
    }
    cdfs: list[list[list[float]]] = [[] for _ in chunks]
    with Progress(total=len(names), desc="fisher spectra", unit="fn", disable=not progress) as bar:
        for future in as_completed(futures):
            i = futures[future]
            cdfs[i] = future.result()
            bar.update(len(chunks[i]))
    return fisher_matrix([cdf for chunk in cdfs for cdf in chunk])


def prepare(config: SearchConfig, out: Path, executor,
            progress: bool = True) -> tuple[Features, np.ndarray]:
    """The functions' features and the embedding of the candidates (NaN elsewhere)."""
    from actsearch.embedding import embed

    names = unique_functions(config, progress)
    outputs = output_features(names, normalize=config.normalize)
    fisher = None
    if config.features in ("fisher", "union"):
        finite = np.isfinite(outputs).all(axis=1)
        fisher = np.full((len(names), 1), np.nan)
        if finite.any():
            rows = _fisher_rows(config, [n for n, ok in zip(names, finite) if ok], out,
                                executor, progress)
            fisher = np.full((len(names), rows.shape[1]), np.nan)
            fisher[finite] = rows
    features = Features(names, outputs, fisher)
    coords = np.full((len(names), 2), np.nan)
    coords[features.candidates] = embed(features, config.features, config.seed,
                                        cache=out / "cache")
    return features, coords


def train_one(task: str, function: str, seed: int, overrides: dict) -> dict:
    """A worker's job: one training run through actbench, as a plain dict."""
    from actbench import train

    return train(task, function, seed, **overrides).model_dump()


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
        try:
            with Pool(workers, scheduler) as pool:
                executor = pool.executor
                for attempt in range(1, MAX_LOST + 1):  # finished feature chunks are kept
                    try:
                        features, coords = prepare(config, out, executor, progress)
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
                baselines = [row_of[n] for n in BASELINES]
                overrides = {} if config.epochs is None else {"epochs": config.epochs}
                if config.normalize:
                    overrides["normalize"] = True
                if config.data_root:
                    overrides["root"] = config.data_root
                bar = Progress(total=config.budget, initial=min(len(done), config.budget),
                           desc="search", unit="eval", disable=not progress)
                _show(bar, done)
                pending: dict[Future, int] = {}
                lost: dict[int, int] = {}  # per row: trainings lost to dead workers
                while len(done) < config.budget:
                    # fill every free worker; "surrogate" suggests one function per call
                    while free := min(slots - len(pending),
                                      config.budget - len(done) - len(pending)):
                        rows = _next_rows(state, strategy, baselines, free)
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
                        state.observed[row] = _accuracy(result)
                        bar.update(1)
                        _show(bar, done)
                    if broken is not None:  # a dead process broke the whole pool
                        executor = pool.restart(broken)
            bar.close()
            return done
        finally:
            study.close()


def _next_rows(state: SearchState, strategy, baselines: list[int], free: int) -> list[int]:
    rows = [r for r in baselines if r not in state.observed and r not in state.pending][:free]
    if len(rows) < free:
        if rows:
            state.pending.update(rows)
        try:
            rows += strategy.suggest(state, free - len(rows)).rows
        finally:
            state.pending.difference_update(rows)
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


def _accuracy(result: dict) -> float:
    value = float(result["val_accuracy"])
    return value if math.isfinite(value) else 0.0


def _show(bar, done: list[Evaluation]) -> None:
    if done:
        best = max(done, key=lambda e: _accuracy(e.model_dump()))
        bar.set_postfix_str(f"best {best.val_accuracy:.4f} {best.function}")


def write_report(evaluations: list[Evaluation], out: Path, title: str, top: int = 5) -> Path:
    """Leaderboard CSV, best-so-far curve and plots of the top functions in ``out``."""
    from actsearch import plots
    from actsearch.cli import write_csv

    ranked = sorted(evaluations, key=lambda e: -_accuracy(e.model_dump()))
    write_csv(out / "leaderboard.csv",
              ["rank", "function", "readable", "val_accuracy", "test_accuracy", "status",
               "seconds", "order"],
              ([i + 1, e.function, readable(e.function), e.val_accuracy, e.test_accuracy,
                e.status, round(e.seconds, 3), e.order] for i, e in enumerate(ranked)))
    if evaluations:
        plots.plot_best_so_far([_accuracy(e.model_dump()) for e in evaluations],
                               out / "best_so_far.png", title)
        plots.plot_functions([e.function for e in ranked[:top]], out / "top_functions.png",
                             f"top {min(top, len(ranked))}: {title}")
    return out


def add_command(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("run", help="search a task live: train the surrogate's picks")
    p.add_argument("--task", required=True, help="actbench task, e.g. mlp-digits")
    p.add_argument("--space", action="append", required=True,
                   help="schema, e.g. 'binary(unary(x),unary(x))' (repeatable: union)")
    add_operators(p)
    p.add_argument("--budget", type=int, default=50, help="evaluations in total")
    p.add_argument("--workers", type=int, default=None,
                   help="parallel trainings (default: all cores; 0: in this process)")
    p.add_argument("--scheduler", default=None,
                   help="Dask scheduler address ('local' starts a local cluster)")
    p.add_argument("--regressor", default="knr")
    p.add_argument("--strategy", default="surrogate")
    p.add_argument("--features", default="union")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="override the task's epochs")
    add_normalize(p)
    p.add_argument("--fisher-batch", type=int, default=32,
                   help="training examples in the Fisher batch (default 32)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--in-order", action="store_true",
                   help="reproducible: use each training's result in the order it was "
                        "submitted, so identical runs pick identical functions (default: as "
                        "soon as it finishes, which keeps every worker busy but depends on "
                        "which worker is faster)")
    add_output(p, "search-run-{task}", "report folder (and study file)")
    p.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    if args.budget < 1:
        raise ActError("--budget must be at least 1")
    config = SearchConfig(
        task=args.task, space=args.space, budget=args.budget, regressor=args.regressor,
        strategy=args.strategy, features=args.features, seed=args.seed, epochs=args.epochs,
        fisher_batch=args.fisher_batch, data_root=args.data_root, in_order=args.in_order,
        normalize=args.normalize,
        operators=args.operators,
    )
    get_strategy(config.strategy)
    get_regressor(config.regressor)
    check_feature_set(config.features)
    from actbench import get_task

    get_task(config.task)
    out = output_path(args, task=config.task)
    start = time.perf_counter()
    evaluations = run_search(config, out, args.workers, args.scheduler)
    write_report(evaluations, out, f"{config.task}, {config.strategy} {config.regressor} "
                 f"({config.features})")
    ranked = sorted(evaluations, key=lambda e: -_accuracy(e.model_dump()))
    print(f"{len(evaluations)} evaluations in {out}/study.sqlite "
          f"({time.perf_counter() - start:.0f} s this run); top functions:")
    for e in ranked[:5]:
        shown = readable(e.function)
        print(f"  {e.val_accuracy:.4f}  {shown}" + (f"  (as {e.function})"
                                                   if shown != e.function else ""))
    log.info(f"wrote {out}/leaderboard.csv, best_so_far.png, top_functions.png")
    return 0
