"""Table rows from finished work units: medians over seeds, members, the Fisher CDF."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from actbench.build_plan import BuildConfig, Plan, make_plan, store_path
from actbench.results import Result
from actbench.tables import TableRecord
from actbench.workstore import FISHER_SEED, UnitKey, UnitResult, WorkStore
from actfim.batch import SpectrumRecord


def _median(values: Iterable[float | None]) -> float:
    """Median with None/NaN ordered above every number; NaN when the median is one."""
    array = np.array([math.inf if v is None or math.isnan(v) else v for v in values])
    value = float(np.median(array))
    return value if math.isfinite(value) else math.nan


def table_row(members: list[str], runs: list[Result],
              spectrum: SpectrumRecord | None) -> TableRecord:
    """One class's row: medians of its runs, its members, its CDF (empty if invalid)."""
    cdf = spectrum.cdf if spectrum is not None and spectrum.valid else None
    return TableRecord(
        train_accuracy=_median(r.train_accuracy for r in runs),
        val_accuracy=_median(r.val_accuracy for r in runs),
        test_accuracy=_median(r.test_accuracy for r in runs),
        train_loss=_median(r.train_loss for r in runs),
        val_loss=_median(r.val_loss for r in runs),
        test_loss=_median(r.test_loss for r in runs),
        equivalent=members,
        fisher_cdf=list(cdf) if cdf else [],
        runtime=_median(r.runtime_s for r in runs),
    )


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


@dataclass(frozen=True)
class Snapshot:
    """A build as its work store holds it: settings, plan, finished units, the rows of
    the classes whose units are all done, and the wall time of its sessions so far."""

    config: BuildConfig
    plan: Plan
    results: dict[UnitKey, UnitResult]
    rows: dict[str, TableRecord]
    wall_s: float


def snapshot(out: str | Path) -> Snapshot:
    """The build of ``out`` (running or interrupted) as far as it has gone: a preview, or
    the figures of a build still under way. Its rows are a uniform sample of the space
    (a build runs its classes in a shuffled order)."""
    config = BuildConfig.model_validate(WorkStore.settings_of(store_path(out)))
    plan = make_plan(config)
    with WorkStore(store_path(out), config.settings()) as store:
        results = {r.key: r for r in store.results()}
        wall_s = float(store.meta("wall_s") or 0.0)
    return Snapshot(config, plan, results, assemble(plan, config.seeds, results), wall_s)
