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

import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Executor, Future, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from actbench.build_plan import BuildConfig, Plan, make_plan, store_path
from actbench.build_rows import assemble, snapshot
from actbench.build_units import run_units
from actbench.card import NOT_RECORDED, TableCard, card_path, hardware, versions, write_card
from actbench.executors import Pool, SerialExecutor, parallelism, worker_device
from actbench.fisher import fisher_batch
from actbench.hookspecs import DATASETS
from actbench.stacked_training import members_per_stack
from actbench.tables import chance_accuracy, is_failed, write_table
from actbench.tasks import get_task
from actbench.train import prepare, recipe_for
from actbench.workstore import UnitKey, UnitResult, WorkStore
from actcore import ActError
from actcore.atomic import remove_stale_temporaries
from actcore.console import Progress
from actcore.lock import exclusive
from actcore.plugins import registry

__all__ = ["BuildConfig", "BuildSummary", "Plan", "build", "make_plan", "snapshot",
           "store_path", "write_snapshot"]

MAX_RESTARTS = 3  # pools started for one build call when workers keep dying

NONFINITE_POLICY = (
    "a failed run (non-finite loss, or an exception in the activation) has chance "
    "accuracy and NaN losses; medians order NaN above every number"
)


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


def _batches(keys: list[UnitKey], per_task: int) -> Iterator[list[UnitKey]]:
    """Units grouped by function, ``per_task`` functions per submitted batch."""
    by_function: dict[str, list[UnitKey]] = {}
    for key in keys:
        by_function.setdefault(key.function, []).append(key)
    groups = list(by_function.values())
    for start in range(0, len(groups), per_task):
        yield [k for group in groups[start : start + per_task] for k in group]


@dataclass
class _Tally:
    """What this call has done so far; wall time goes to the store with every batch, so
    even a hard kill keeps it."""

    units: int
    reused: int
    computed: int = 0
    trainings: int = 0
    lost: int = 0
    failures: int = 0
    clock: float = field(default_factory=time.perf_counter)

    def wall_to(self, store: WorkStore) -> float:
        """Add the wall time since the last call to ``store``; its total so far."""
        now = time.perf_counter()
        total = store.add_wall(now - self.clock)
        self.clock = now
        return total


@dataclass
class _Runner:
    """Runs a build's units in batches on an executor and records each batch."""

    config: BuildConfig
    store: WorkStore
    tally: _Tally
    bar: Progress
    per_task: int
    on_batch: Callable[[list[UnitResult]], None] | None
    stack: int = 1

    def run(self, pool: Executor, todo: list[UnitKey], parallel: int) -> None:
        """Keep ``2 * parallel`` batches in flight (one in process); record each as it
        returns, so an interruption loses only the batches in flight."""
        pending = iter(list(_batches(todo, self.per_task)))
        running: dict[Future, list[UnitKey]] = {}
        capacity = 1 if isinstance(pool, SerialExecutor) else 2 * parallel

        def top_up() -> None:
            while len(running) < capacity and (batch := next(pending, None)) is not None:
                running[pool.submit(run_units, self.config, batch, self.stack)] = batch

        try:
            top_up()
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                broken: BrokenExecutor | None = None
                for future in finished:
                    batch = running.pop(future)
                    try:
                        self.record(future.result())
                    except BrokenExecutor as err:  # record the others, then restart
                        broken = err
                    except ActError:  # wrong for every function: stop, keep what is done
                        raise
                    except Exception as err:  # the batch could not run: retry next time
                        self.tally.lost += len(batch)
                        self.bar.write(f"batch of {len(batch)} units failed to run: "
                                       f"{type(err).__name__}: {err}")
                if broken is not None:
                    raise broken
                top_up()
        finally:
            for future in running:
                future.cancel()

    def record(self, results: list[UnitResult]) -> None:
        self.store.add(results)
        self.tally.wall_to(self.store)
        self.tally.computed += len(results)
        self.tally.trainings += sum(r.key.kind == "train" for r in results)
        self.tally.failures += sum(not r.ok for r in results)
        self.bar.update(len(results))
        self.bar.set_postfix(failed_units=self.tally.failures, refresh=False)
        if self.on_batch is not None:
            self.on_batch(results)

    def run_restarting(self, pool: Pool, keys: list[UnitKey]) -> None:
        """:meth:`run` on ``pool``, on a new pool after a worker dies (at most
        :data:`MAX_RESTARTS` pools); a broken pool's batches are not results."""
        for started in range(1, MAX_RESTARTS + 1):
            done = self.store.done()
            try:
                self.run(pool.executor, [k for k in keys if k not in done],
                         parallelism(pool.executor))
                return
            except BrokenExecutor as err:
                if started == MAX_RESTARTS:
                    raise ActError(f"workers died {started} times ({err}); finished work is "
                                   "saved, rerun the same command to go on") from None
                pool.restart(err)


def build(
    config: BuildConfig,
    out: str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    per_task: int = 2,
    stack: int | None = 1,
    executor: Executor | None = None,
    progress: bool = True,
    on_batch: Callable[[list[UnitResult]], None] | None = None,
) -> BuildSummary:
    """Build (or resume) the table ``out`` (``.json`` or ``.json.gz``); see the module doc.

    ``workers``/``scheduler`` choose the executor (:func:`actbench.executors.make_executor`)
    unless ``executor`` is given. ``on_batch`` is called after each batch is recorded.
    With ``stack`` K > 1 (None: where it pays), a worker gets K functions at a time and
    trains each seed's K side by side (:func:`actbench.train_many`).
    """
    out = _table_path(out)
    if per_task < 1:
        raise ActError(f"functions per task must be at least 1, got {per_task}")
    task = get_task(config.task)
    recipe = recipe_for(task, config.overrides)  # bad overrides fail before any work
    device = worker_device(config.device, scheduler)
    stack = members_per_stack(task, device, stack)
    per_task = max(per_task, stack)
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
            tally = _Tally(units=len(keys), reused=len(keys) - len(todo), clock=start)
            if scheduler:
                where = f"dask {scheduler}"
            else:
                where = "in process" if workers == 0 else f"{workers or 'all'} local processes"
            on = "each worker's (CUDA where it has one)" if device is None else str(device)
            where += f", device {on}"
            try:
                if todo:
                    with Progress(total=len(keys), initial=len(keys) - len(todo),
                                  unit="unit", desc=f"build {task.name}",
                                  disable=not progress, smoothing=0.05) as bar:
                        runner = _Runner(config, store, tally, bar, per_task, on_batch,
                                         stack)  # fmt: skip
                        if executor is not None:
                            runner.run(executor, todo, 1)
                        else:
                            with Pool(workers, scheduler, device) as pool:
                                runner.run_restarting(pool, keys)
            finally:
                wall_total = tally.wall_to(store)
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
            return BuildSummary(
                out=written, card=card, store=store.path, units=tally.units,
                computed=tally.computed, reused=tally.reused, trainings=tally.trainings,
                lost=tally.lost, wall_s=time.perf_counter() - start,
            )
        finally:
            store.close()


def write_snapshot(out: str | Path, to: str | Path) -> TableCard:
    """Write the rows the build of ``out`` has finished so far (:func:`snapshot`; running
    or stopped) as the table ``to``, with its card: a uniform sample of the space to search
    or study while the build goes on (``complete`` is false until every class is in)."""
    to = _table_path(to)
    state = snapshot(out)
    if not state.rows:
        raise ActError(f"the build of {out} has not finished a class yet")
    task = get_task(state.config.task)
    recipe = recipe_for(task, state.config.overrides).model_dump()
    card = _card(state.config, state.plan, task, recipe, state.rows, state.results,
                 state.wall_s, f"a snapshot of the build of {Path(out).name}", to)
    write_card(card, card_path(to))  # the card first, as a build writes them
    write_table(to, state.rows)
    return card


def _table_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.name.endswith((".json", ".json.gz")):
        raise ActError(f"--out must end in .json or .json.gz, got {path}")
    return path


def _preflight(config: BuildConfig, dataset: str) -> None:
    """What is wrong for every function (a missing data folder, a Fisher batch larger
    than the data) stops the build here, before any work, instead of becoming a table
    of failures."""
    source = registry(DATASETS).get(dataset)
    for split in ("train", "val", "test"):
        source.load(split, config.data_root, False, augment=False)
    fisher_batch(dataset, config.fisher_batch, config.fisher_seed, config.data_root)


def _card(config, plan, task, recipe, rows, results, wall_total, where, out) -> TableCard:
    fisher_invalid = sum(not r.fisher_cdf for r in rows.values())
    chance = chance_accuracy(registry(DATASETS).get(task.dataset).num_classes)
    failed = sum(is_failed(r.val_accuracy, chance, r.val_loss) for r in rows.values())
    splits = prepare(task, config.data_root, False, config.overrides).splits
    units = [k for k in plan.units(config.seeds) if k in results]
    return TableCard(
        table=Path(out).name, task=task.name, dataset=task.dataset, model=task.model,
        recipe=recipe, splits={name: len(data) for name, data in splits.items()},
        seeds=list(range(config.seeds)), schemas=list(config.schemas),
        operators=list(plan.space.operators), functions=plan.functions, classes=plan.classes,
        rows=len(rows), complete=len(rows) == plan.classes, failed=failed,
        fisher={"type": config.fisher, "batch": config.fisher_batch, "seed": config.fisher_seed,
                "weights": "one initialisation (the seed) for every function"},
        fisher_invalid=fisher_invalid, nonfinite_policy=NONFINITE_POLICY,
        versions=versions(), hardware=hardware(), workers=where,
        machines=dict(Counter(results[k].machine or NOT_RECORDED for k in units)),
        cpu_s=sum(results[k].cpu_s for k in units),
        wall_s=wall_total,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )  # fmt: skip


# --- command line ----------------------------------------------------------------------------


