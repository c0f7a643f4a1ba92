"""A table build's work units, run on the workers: one training, or one spectrum. Any
exception of the function becomes its recorded result; only errors that are wrong for
every function (data, settings) stop the build."""

from __future__ import annotations

import time

from actbench.build_plan import BuildConfig
from actbench.executors import single_thread
from actbench.fisher import fisher_batch, model_factory
from actbench.hookspecs import DATASETS
from actbench.stacked_training import train_many
from actbench.tables import chance_accuracy
from actbench.tasks import get_task
from actbench.train import Result, train
from actbench.workstore import UnitKey, UnitResult
from actcore import ActError
from actcore.plugins import registry
from actfim.batch import SpectrumRecord


def _fisher_unit(config: BuildConfig, function: str) -> tuple[bool, str, dict]:
    from actfim.batch import spectra_for_activations

    task = get_task(config.task)
    inputs, targets = fisher_batch(task.dataset, config.fisher_batch, config.fisher_seed,
                                   config.data_root)
    record = spectra_for_activations(
        model_factory(task.name), [function], inputs, targets, seed=config.fisher_seed,
        progress=False, fisher=config.fisher,
    )[function]
    return record.valid, record.reason or "", record


def _train_unit(config: BuildConfig, function: str, seed: int) -> tuple[bool, str, dict]:
    result = train(config.task, function, seed, root=config.data_root, **config.overrides)
    return result.status == "ok", result.reason, result


def _failed_record(config: BuildConfig, key: UnitKey, reason: str,
                   seconds: float) -> Result | SpectrumRecord:
    if key.kind == "fisher":
        return SpectrumRecord(expression=key.function, valid=False, reason=reason,
                              seconds=seconds)
    task = get_task(config.task)
    chance = chance_accuracy(registry(DATASETS).get(task.dataset).num_classes)
    return Result(
        task=task.name, activation=key.function, seed=key.seed, status="failed",
        reason=reason, train_accuracy=chance, val_accuracy=chance, test_accuracy=chance,
        train_loss=None, val_loss=None, test_loss=None, runtime_s=seconds, epochs=0,
    )


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


def _stacked_trainings(config: BuildConfig, keys: list[UnitKey]) -> list[UnitResult]:
    """The training units of one seed, trained side by side (:func:`train_many`); each
    unit is charged an equal share of the stack's time."""
    cpu, wall = time.process_time(), time.perf_counter()
    results = train_many(config.task, [k.function for k in keys], keys[0].seed,
                         stack=len(keys), root=config.data_root, **config.overrides)
    cpu_s, wall_s = ((time.process_time() - cpu) / len(keys),
                     (time.perf_counter() - wall) / len(keys))  # fmt: skip
    return [UnitResult(key=key, ok=r.status == "ok", reason=r.reason, record=r, cpu_s=cpu_s,
                       wall_s=wall_s) for key, r in zip(keys, results, strict=True)]  # fmt: skip


def run_units(config: BuildConfig, keys: list[UnitKey], stack: int = 1) -> list[UnitResult]:
    """A batch of units, in one worker call (one torch thread); with ``stack`` > 1 the
    trainings of each seed go ``stack`` at a time through :func:`train_many`."""
    single_thread()
    if stack == 1:
        return [run_unit(config, key) for key in keys]
    done = {key: run_unit(config, key) for key in keys if key.kind == "fisher"}
    by_seed: dict[int, list[UnitKey]] = {}
    for key in keys:
        if key.kind == "train":
            by_seed.setdefault(key.seed, []).append(key)
    for seed_keys in by_seed.values():
        for start in range(0, len(seed_keys), stack):
            chunk = seed_keys[start : start + stack]
            done.update((r.key, r) for r in _stacked_trainings(config, chunk))
    return [done[key] for key in keys]
