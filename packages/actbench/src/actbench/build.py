"""Build an Act-Bench table: train every equivalence class of a space on a task.

``act bench build --task mlp-digits --space 'binary(unary(x),unary(x))' --seeds 3
--out TABLE.json.gz`` groups the space into actcore's equivalence classes, and for one
representative per class (its shortest name) trains the task once per seed and computes
the K-FAC Fisher log-eigenvalue CDF with actfim (the same initial weights, from
``fisher_seed``, for every function). The table row holds the median over the seeds of
the accuracies, the losses and the runtime, the class's other members as
``Equivalent Activation Functions`` and the CDF; a card (:mod:`actbench.card`) is saved
beside it.

Failures, as the published tables store them: a run whose loss goes non-finite, or whose
activation raises, counts as a failed run at chance accuracy (1 / classes) with NaN
losses. The median of the seeds orders a NaN loss above every finite one, so a function
failing in most seeds has NaN losses and chance accuracy, one failing in a minority keeps
finite medians. A function without a valid spectrum (non-finite, or the computation
failed) gets an empty ``Fisher log eigenvalue CDF``: searches then filter it out.

Work units (one training, or one spectrum) run in batches of a few functions on a
:mod:`actbench.executors` executor (local processes, or a Dask cluster) and are recorded
in a :class:`actbench.workstore.WorkStore` beside the output (``TABLE.json.gz.work.sqlite``)
as each batch returns: killing the build loses at most the batches in flight, and rerunning
the same command computes only what is missing. The table is written atomically once every
unit is done.
"""

from __future__ import annotations

import functools
import math
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Executor, Future, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from actbench.card import TableCard, card_path, hardware, versions, write_card
from actbench.executors import Pool, SerialExecutor, single_thread
from actbench.hookspecs import DATASETS, MODELS
from actbench.recipes import parse_overrides
from actbench.tables import TableRecord, chance_accuracy, is_failed, write_table
from actbench.tasks import get_task
from actbench.train import Result, recipe_for, train
from actbench.workstore import FISHER_SEED, UnitKey, UnitResult, WorkStore
from actcore import ActError, Space, equivalence_classes
from actcore.atomic import remove_stale_temporaries
from actcore.cli import add_normalize, add_operators, add_output, output_path
from actcore.console import Progress, log
from actcore.lock import exclusive
from actcore.plugins import registry

MAX_RESTARTS = 3  # pools started for one build call when workers keep dying

NONFINITE_POLICY = (
    "a failed run (non-finite loss, or an exception in the activation) has chance "
    "accuracy and NaN losses; medians order NaN above every number"
)


class BuildConfig(BaseModel):
    """What a table is built from; everything but ``limit`` and ``data_root`` tags the
    work store, so a rerun with other settings cannot mix results."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str
    schemas: list[str] = Field(min_length=1)
    operators: list[str] | None = None
    seeds: int = Field(3, ge=1)
    overrides: dict[str, Any] = Field(default_factory=dict, description="recipe fields")
    fisher: Literal["mc", "empirical", "type2"] = "mc"
    fisher_batch: int = Field(128, ge=1)
    fisher_seed: int = 0
    limit: int | None = Field(None, ge=1, description="only the first N classes (smoke run)")
    data_root: str | None = None

    def settings(self) -> dict[str, Any]:
        return self.model_dump(exclude={"limit", "data_root"})


@dataclass(frozen=True)
class Plan:
    """The classes to build: representatives, their other members, non-finite flags."""

    space: Space
    functions: int
    classes: int
    representatives: list[str]
    members: list[list[str]]
    nonfinite: list[bool]

    def units(self, seeds: int) -> list[UnitKey]:
        keys = []
        for rep in self.representatives:
            keys += [UnitKey(function=rep, kind="train", seed=s) for s in range(seeds)]
            keys.append(UnitKey(function=rep, kind="fisher"))
        return keys


class BuildSummary(BaseModel):
    """What one call of :func:`build` did."""

    out: Path | None = Field(description="the table, when every unit is done")
    card: Path | None
    store: Path
    units: int
    computed: int = Field(description="units computed by this call")
    reused: int = Field(description="units found in the work store")
    trainings: int = Field(description="trainings run by this call")
    lost: int = Field(description="units whose batch could not run (rerun to retry)")
    wall_s: float


def make_plan(config: BuildConfig, progress: bool = False) -> Plan:
    """Group the space into classes (the first ``config.limit`` with a limit)."""
    space = Space(*config.schemas, operators=config.operators)
    classes = equivalence_classes(space, progress=progress)
    reps = classes.representatives
    flags = classes.nonfinite_flags()
    count = len(reps) if config.limit is None else min(config.limit, len(reps))
    members = []
    for rep in reps[:count]:
        members.append([m for m in classes.members(rep) if m != rep])
    return Plan(space, len(space), len(reps), reps[:count], members,
                [bool(f) for f in flags[:count]])  # fmt: skip


def store_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".work.sqlite")


# --- work units (run on the workers) -----------------------------------------------------


@functools.cache
def _fisher_batch(dataset: str, size: int, seed: int, root: str | None):
    source = registry(DATASETS).get(dataset)
    data = source.load("train", root, False, augment=False)
    if len(data) < size:
        raise ActError(f"{dataset} has {len(data)} training examples, fewer than the "
                       f"Fisher batch of {size}")  # fmt: skip
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:size]
    pairs = [data[int(i)] for i in order]
    inputs = torch.stack([torch.as_tensor(x, dtype=torch.float32) for x, _ in pairs])
    return inputs, torch.as_tensor([int(y) for _, y in pairs])


def _fisher_unit(config: BuildConfig, function: str) -> tuple[bool, str, dict]:
    from actfim.batch import spectra_for_activations

    task = get_task(config.task)
    source = registry(DATASETS).get(task.dataset)
    architecture = registry(MODELS).get(task.model)
    inputs, targets = _fisher_batch(task.dataset, config.fisher_batch, config.fisher_seed,
                                    config.data_root)  # fmt: skip

    def make_model(activation: torch.nn.Module) -> torch.nn.Module:
        return architecture.build(lambda: activation, source.input_shape, source.num_classes)

    record = spectra_for_activations(
        make_model, [function], inputs, targets, seed=config.fisher_seed, progress=False,
        fisher=config.fisher,
    )[function]  # fmt: skip
    return record.valid, record.reason or "", record.model_dump()


def _train_unit(config: BuildConfig, function: str, seed: int) -> tuple[bool, str, dict]:
    result = train(config.task, function, seed, root=config.data_root, **config.overrides)
    return result.status == "ok", result.reason, result.model_dump()


def _failed_record(config: BuildConfig, key: UnitKey, reason: str, seconds: float) -> dict:
    if key.kind == "fisher":
        return {"expression": key.function, "valid": False, "reason": reason, "cdf": None,
                "seconds": seconds}  # fmt: skip
    task = get_task(config.task)
    chance = chance_accuracy(registry(DATASETS).get(task.dataset).num_classes)
    return Result(
        task=task.name, activation=key.function, seed=key.seed, status="failed",
        reason=reason, train_accuracy=chance, val_accuracy=chance, test_accuracy=chance,
        train_loss=None, val_loss=None, test_loss=None, runtime_s=seconds, epochs=0,
    ).model_dump()  # fmt: skip


def run_unit(config: BuildConfig, key: UnitKey) -> UnitResult:
    """Compute one unit; any exception of the function is recorded, never raised."""
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        if key.kind == "fisher":
            ok, reason, record = _fisher_unit(config, key.function)
        else:
            ok, reason, record = _train_unit(config, key.function, key.seed)
    except ActError:  # wrong for every function (data, settings): stop the build
        raise
    except Exception as err:  # an operator that raises is this function's result
        reason = f"{type(err).__name__}: {err}"
        ok, record = False, _failed_record(config, key, reason, time.perf_counter() - wall)
    return UnitResult(
        key=key, ok=ok, reason=reason, record=record,
        cpu_s=time.process_time() - cpu, wall_s=time.perf_counter() - wall,
    )  # fmt: skip


def run_units(config: BuildConfig, keys: list[UnitKey]) -> list[UnitResult]:
    """A batch of units, in one worker call (one torch thread)."""
    single_thread()
    return [run_unit(config, key) for key in keys]


# --- aggregation ------------------------------------------------------------------------


def _median(values: Iterable[float | None]) -> float:
    """Median with None/NaN ordered above every number; NaN when the median is one."""
    array = np.array([math.inf if v is None or math.isnan(v) else v for v in values])
    value = float(np.median(array))
    return value if math.isfinite(value) else math.nan


def table_row(members: list[str], runs: list[dict], spectrum: dict | None) -> TableRecord:
    """One class's row: medians of its runs, its members, its CDF (empty if invalid)."""
    cdf = spectrum.get("cdf") if spectrum and spectrum.get("valid") else None
    return TableRecord.model_validate({
        "Train Accuracy": _median(r["train_accuracy"] for r in runs),
        "Validation Accuracy": _median(r["val_accuracy"] for r in runs),
        "Test Accuracy": _median(r["test_accuracy"] for r in runs),
        "Train Loss": _median(r["train_loss"] for r in runs),
        "Validation Loss": _median(r["val_loss"] for r in runs),
        "Test Loss": _median(r["test_loss"] for r in runs),
        "Equivalent Activation Functions": members,
        "Fisher log eigenvalue CDF": list(cdf) if cdf else [],
        "Runtime (s)": _median(r["runtime_s"] for r in runs),
    })  # fmt: skip


def assemble(
    plan: Plan, seeds: int, results: dict[UnitKey, UnitResult]
) -> dict[str, TableRecord]:
    """Rows of every planned class whose units are all done, in class order."""
    rows = {}
    for rep, members in zip(plan.representatives, plan.members):
        runs = [results.get(UnitKey(function=rep, kind="train", seed=s)) for s in range(seeds)]
        fisher = results.get(UnitKey(function=rep, kind="fisher", seed=FISHER_SEED))
        if fisher is None or any(r is None for r in runs):
            continue
        rows[rep] = table_row(members, [r.record for r in runs], fisher.record)
    return rows


def snapshot(out: str | Path) -> tuple[BuildConfig, Plan, dict[str, TableRecord]]:
    """The rows finished so far by the build of ``out`` (running or interrupted), read
    from its work store: a preview, or the figures of a build still under way."""
    config = BuildConfig.model_validate(WorkStore.settings_of(store_path(out)))
    plan = make_plan(config)
    with WorkStore(store_path(out), config.settings()) as store:
        results = {r.key: r for r in store.results()}
    return config, plan, assemble(plan, config.seeds, results)


# --- the build loop -----------------------------------------------------------------------


def _batches(keys: list[UnitKey], per_task: int) -> Iterator[list[UnitKey]]:
    """Units grouped by function, ``per_task`` functions per submitted batch."""
    by_function: dict[str, list[UnitKey]] = {}
    for key in keys:
        by_function.setdefault(key.function, []).append(key)
    groups = list(by_function.values())
    for start in range(0, len(groups), per_task):
        yield [k for group in groups[start : start + per_task] for k in group]


def build(
    config: BuildConfig,
    out: str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    per_task: int = 2,
    executor: Executor | None = None,
    progress: bool = True,
    on_batch: Callable[[list[UnitResult]], None] | None = None,
) -> BuildSummary:
    """Build (or resume) the table ``out`` (``.json`` or ``.json.gz``); see the module doc.

    ``workers``/``scheduler`` choose the executor (:func:`actbench.executors.make_executor`)
    unless ``executor`` is given. ``on_batch`` is called after each batch is recorded.
    """
    out = Path(out)
    if not out.name.endswith((".json", ".json.gz")):
        raise ActError(f"--out must end in .json or .json.gz, got {out}")
    if per_task < 1:
        raise ActError(f"functions per task must be at least 1, got {per_task}")
    task = get_task(config.task)
    recipe = recipe_for(task, config.overrides)  # bad overrides fail before any work
    _preflight(config, task.dataset)
    with exclusive(store_path(out), "the work store"):  # one build of ``out`` at a time
        for finished in (out, card_path(out)):  # what a killed writer left half-written
            remove_stale_temporaries(finished)
        start = time.perf_counter()
        plan = make_plan(config, progress=progress)
        store = WorkStore(store_path(out), config.settings())
        try:
            done = store.done()
            keys = plan.units(config.seeds)
            todo = [k for k in keys if k not in done]
            # wall time goes to the store with every batch, so even a hard kill keeps it
            summary: dict[str, Any] = dict(units=len(keys), reused=len(keys) - len(todo),
                                           computed=0, trainings=0, lost=0, _clock=start)
            label = "in process" if workers == 0 else f"{workers or 'all'} local processes"
            where = f"dask {scheduler}" if scheduler else label
            try:
                if todo:
                    bar = Progress(
                        total=len(keys), initial=len(keys) - len(todo), unit="unit",
                        desc=f"build {task.name}", disable=not progress, smoothing=0.05,
                    )  # fmt: skip
                    with bar:
                        if executor is not None:
                            _run(executor, config, todo, per_task, 1, store, bar, summary, on_batch)
                        else:
                            with Pool(workers, scheduler) as pool:
                                _run_restarting(pool, config, keys, per_task, store, bar,
                                                summary, on_batch)
            finally:
                wall_total = store.add_wall(time.perf_counter() - summary.pop("_clock"))
                summary.pop("wall_s", None)
            results = {r.key: r for r in store.results()}
            rows = assemble(plan, config.seeds, results)
            written = card = None
            if len(rows) == len(plan.representatives):  # the card first: never a table
                card = write_card(  # without its card, even if killed in between
                    _card(config, plan, task, recipe.model_dump(), rows, results, wall_total,
                          where, out),
                    card_path(out),
                )
                written = write_table(out, rows)
            return BuildSummary(out=written, card=card, store=store.path,
                                wall_s=time.perf_counter() - start, **summary)  # fmt: skip
        finally:
            store.close()


def _run_restarting(
    pool: Pool, config: BuildConfig, keys: list[UnitKey], per_task: int, store: WorkStore,
    bar: Progress, summary: dict, on_batch: Callable | None,
) -> None:  # fmt: skip
    """:func:`_run` on ``pool``, on a new pool after a worker dies (at most
    :data:`MAX_RESTARTS` pools); a broken pool's batches are not results."""
    for started in range(1, MAX_RESTARTS + 1):
        done = store.done()
        todo = [k for k in keys if k not in done]
        try:
            _run(pool.executor, config, todo, per_task, _parallelism(pool.executor),
                 store, bar, summary, on_batch)
            return
        except BrokenExecutor as err:
            if started == MAX_RESTARTS:
                raise ActError(f"workers died {started} times ({err}); finished work is "
                               "saved, rerun the same command to go on") from None
            pool.restart(err)


def _preflight(config: BuildConfig, dataset: str) -> None:
    """What is wrong for every function (a missing data folder, a Fisher batch larger
    than the data) stops the build here, before any work, instead of becoming a table
    of failures."""
    source = registry(DATASETS).get(dataset)
    for split in ("train", "val", "test"):
        source.load(split, config.data_root, False, augment=False)
    _fisher_batch(dataset, config.fisher_batch, config.fisher_seed, config.data_root)


def _parallelism(pool: Executor) -> int:
    """How many batches the executor runs at once (processes, or Dask worker threads)."""
    client = getattr(pool, "_client", None)
    if client is not None:
        return max(1, sum(client.nthreads().values()))
    return max(1, getattr(pool, "_max_workers", None) or 1)


def _run(
    pool: Executor, config: BuildConfig, todo: list[UnitKey], per_task: int, parallel: int,
    store: WorkStore, bar: Progress, summary: dict, on_batch: Callable | None,
) -> None:  # fmt: skip
    """Keep ``2 * parallel`` batches in flight (one in process); record each as it
    returns, so an interruption loses only the batches in flight."""
    pending = iter(list(_batches(todo, per_task)))
    running: dict[Future, list[UnitKey]] = {}
    failures = 0
    capacity = 1 if isinstance(pool, SerialExecutor) else 2 * parallel

    def top_up() -> None:
        while len(running) < capacity:
            batch = next(pending, None)
            if batch is None:
                return
            running[pool.submit(run_units, config, batch)] = batch

    try:
        top_up()
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            broken: BrokenExecutor | None = None
            for future in finished:
                batch = running.pop(future)
                try:
                    results = future.result()
                except BrokenExecutor as err:  # record the others, then build() restarts
                    broken = err
                    continue
                except ActError:  # wrong for every function: stop, keep what is done
                    raise
                except Exception as err:  # the batch could not run at all: retry next time
                    summary["lost"] += len(batch)
                    bar.write(f"batch of {len(batch)} units failed to run: "
                              f"{type(err).__name__}: {err}")  # fmt: skip
                    continue
                store.add(results)
                now = time.perf_counter()
                summary["wall_s"] = store.add_wall(now - summary.pop("_clock"))
                summary["_clock"] = now
                summary["computed"] += len(results)
                summary["trainings"] += sum(r.key.kind == "train" for r in results)
                failures += sum(not r.ok for r in results)
                bar.update(len(results))
                bar.set_postfix(failed_units=failures, refresh=False)
                if on_batch is not None:
                    on_batch(results)
            if broken is not None:
                raise broken
            top_up()
    finally:
        for future in running:
            future.cancel()


def _card(config, plan, task, recipe, rows, results, wall_total, where, out) -> TableCard:
    fisher_invalid = sum(not r.fisher_cdf for r in rows.values())
    chance = chance_accuracy(registry(DATASETS).get(task.dataset).num_classes)
    failed = sum(is_failed(r.val_accuracy, chance, r.val_loss) for r in rows.values())
    return TableCard(
        table=Path(out).name, task=task.name, dataset=task.dataset, model=task.model,
        recipe=recipe, seeds=list(range(config.seeds)), schemas=list(config.schemas),
        operators=list(plan.space.operators), functions=plan.functions, classes=plan.classes,
        rows=len(rows), complete=len(rows) == plan.classes, failed=failed,
        fisher={"type": config.fisher, "batch": config.fisher_batch, "seed": config.fisher_seed,
                "weights": "one initialisation (the seed) for every function"},
        fisher_invalid=fisher_invalid, nonfinite_policy=NONFINITE_POLICY,
        versions=versions(), hardware=hardware(), workers=where,
        cpu_s=sum(r.cpu_s for r in results.values()), wall_s=wall_total,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )  # fmt: skip


# --- command line ----------------------------------------------------------------------------


def add_command(commands: Any) -> None:
    """Register ``act bench build`` on the ``act bench`` subcommands."""
    cmd = commands.add_parser(
        "build", help="build an Act-Bench table: train every class of a space (resumable)"
    )
    cmd.add_argument("--task", "-t", required=True, help="task name (act bench tasks)")
    cmd.add_argument("--space", action="append", required=True, metavar="SCHEMA",
                     help="schema, e.g. 'binary(unary(x),unary(x))' (repeat for a union)")
    add_operators(cmd)
    cmd.add_argument("--seeds", type=int, default=3, help="train seeds 0..N-1 (default 3)")
    add_output(cmd, "bench-build-{task}.json.gz", "the table, TABLE.json[.gz]")
    cmd.add_argument("--workers", type=int,
                     help="parallel worker processes (default: all cores; 0: in process)")
    cmd.add_argument("--scheduler", metavar="ADDRESS",
                     help="run on a Dask cluster (tcp://host:8786, or 'local' to start one)")
    cmd.add_argument("--limit", type=int, help="only the first N classes (a smoke run)")
    cmd.add_argument("--per-task", type=int, default=2,
                     help="functions per submitted task (default 2)")
    cmd.add_argument("--epochs", type=int, help="override the recipe's epochs")
    cmd.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                     help="override a recipe field, e.g. --set lr=0.01")
    add_normalize(cmd)
    cmd.add_argument("--fisher", choices=["mc", "empirical", "type2"], default="mc")
    cmd.add_argument("--fisher-batch", type=int, default=128, help="examples for the Fisher")
    cmd.add_argument("--data-root", help="data folder (default $ACT_DATA)")
    cmd.set_defaults(run=run_build)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_build(args: Any) -> int:
    overrides = parse_overrides(args.set, args.epochs, args.normalize)
    if args.seeds < 1:
        raise ActError(f"--seeds must be at least 1, got {args.seeds}")
    if args.limit is not None and args.limit < 1:
        raise ActError(f"--limit must be at least 1, got {args.limit}")
    if args.fisher_batch < 1:
        raise ActError(f"--fisher-batch must be at least 1, got {args.fisher_batch}")
    config = BuildConfig(
        task=args.task, schemas=args.space, operators=args.operators, seeds=args.seeds,
        overrides=overrides, fisher=args.fisher, fisher_batch=args.fisher_batch,
        limit=args.limit, data_root=args.data_root,
    )  # fmt: skip
    previous = signal.signal(signal.SIGTERM, _interrupt)  # kill: stop workers, keep work
    try:
        summary = build(config, output_path(args, task=args.task), workers=args.workers,
                        scheduler=args.scheduler, per_task=args.per_task)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"{summary.computed} units computed, {summary.reused} reused of {summary.units} "
          f"({summary.trainings} trainings) in {summary.wall_s:.0f}s; "
          f"work store {summary.store}")  # fmt: skip
    if summary.out is None:
        print(f"table not written: {summary.units - summary.computed - summary.reused} "
              f"units missing ({summary.lost} lost to failed batches); rerun to finish")
        return 1
    log.info(f"table written to {summary.out}, card {summary.card}")
    return 0
