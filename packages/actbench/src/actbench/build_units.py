"""A table build's work units, run on the workers: one training, or one spectrum. Any
exception of the function becomes its recorded result; only errors that are wrong for
every function (data, settings) stop the build."""

from __future__ import annotations

import time

from actbench.build_plan import BuildConfig
from actbench.executors import single_thread
from actbench.fisher import fisher_batch, model_factory
from actbench.hookspecs import DATASETS
from actbench.results import Result
from actbench.stacked_training import train_many
from actbench.tables import chance_accuracy
from actbench.tasks import get_task
from actbench.train import recipe_for
from actbench.workstore import UnitKey, UnitResult
from actcore import ActError
from actcore.device import resolve_device
from actcore.machine import describe_machine
from actcore.plugins import registry
from actfim.batch import SpectrumRecord


def _fisher_unit(config: BuildConfig, function: str) -> tuple[bool, str, dict]:
    from actfim.batch import spectra_for_activations

    task = get_task(config.task)
    inputs, targets = fisher_batch(task.dataset, config.fisher_batch, config.fisher_seed,
                                   config.data_root)
    record = spectra_for_activations(
        model_factory(task.name), [function], inputs, targets, seed=config.fisher_seed,
        progress=False, fisher=config.fisher, device=resolve_device(config.device),
    )[function]
    return record.valid, record.reason or "", record


def _failed_training(config: BuildConfig, key: UnitKey, reason: str, seconds: float) -> Result:
    """The record of a training whose function raised outside the harness's checks."""
    task = get_task(config.task)
    return Result.failed(
        task.name, key.function, key.seed, reason,
        chance=chance_accuracy(registry(DATASETS).get(task.dataset).num_classes), epochs=0,
        runtime_s=seconds, recipe=recipe_for(task, config.overrides).model_dump(mode="json"),
    )  # fmt: skip


def _fisher(config: BuildConfig, key: UnitKey) -> UnitResult:
    """One Fisher unit; any exception of the function is recorded, never raised."""
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        ok, reason, record = _fisher_unit(config, key.function)
    except ActError:  # wrong for every function (data, settings): stop the build
        raise
    except Exception as err:  # an operator that raises is this function's result
        reason = f"{type(err).__name__}: {err}"
        ok, record = False, SpectrumRecord(expression=key.function, valid=False,
                                           reason=reason, seconds=time.perf_counter() - wall)
    return UnitResult(
        key=key, ok=ok, reason=reason, record=record,
        cpu_s=time.process_time() - cpu, wall_s=time.perf_counter() - wall,
    )  # fmt: skip


def _trainings(config: BuildConfig, keys: list[UnitKey], stack: int) -> list[UnitResult]:
    """Training units of one seed through :func:`train_many`, which trains them ``stack``
    at a time (1: one by one); each unit is charged an equal share of the call's time. A
    function that raises past the harness fails alone: the others are redone one by one."""
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        results = train_many(config.task, [k.function for k in keys], keys[0].seed,
                             stack=stack, root=config.data_root, device=config.device,
                             **config.overrides)  # fmt: skip
    except ActError:  # wrong for every function (data, settings): stop the build
        raise
    except Exception as err:
        if len(keys) > 1:
            return [unit for key in keys for unit in _trainings(config, [key], 1)]
        reason = f"{type(err).__name__}: {err}"
        results = [_failed_training(config, keys[0], reason, time.perf_counter() - wall)]
    cpu_s, wall_s = ((time.process_time() - cpu) / len(keys),
                     (time.perf_counter() - wall) / len(keys))  # fmt: skip
    return [UnitResult(key=key, ok=r.status == "ok", reason=r.reason, record=r, cpu_s=cpu_s,
                       wall_s=wall_s) for key, r in zip(keys, results, strict=True)]  # fmt: skip


def run_units(config: BuildConfig, keys: list[UnitKey], stack: int = 1) -> list[UnitResult]:
    """A batch of units, in one worker call (one torch thread); the trainings of each
    seed go ``stack`` at a time through :func:`train_many` (which decides how). Each
    result names the machine that computed it."""
    single_thread()
    done = {key: _fisher(config, key) for key in keys if key.kind == "fisher"}
    by_seed: dict[int, list[UnitKey]] = {}
    for key in keys:
        if key.kind == "train":
            by_seed.setdefault(key.seed, []).append(key)
    for seed_keys in by_seed.values():
        for start in range(0, len(seed_keys), stack):
            chunk = seed_keys[start : start + stack]
            done.update((r.key, r) for r in _trainings(config, chunk, stack))
    machine = describe_machine(resolve_device(config.device))
    return [done[key].model_copy(update={"machine": machine}) for key in keys]
