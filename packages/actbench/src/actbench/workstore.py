"""The work store of a table build: an embedded SQLite file of finished work units.

A build is a set of *units*: one training of a class representative with one seed, and
one Fisher spectrum per representative. Each finished unit is one committed row, keyed by
``(function, kind, seed)``; a build killed at any moment keeps every row written, and a
rerun computes only the units that have no row. The store is tagged with the build's
settings (task, recipe, space, seeds, Fisher settings) so that units of different builds
never mix, and it accumulates the wall time of every session that worked on it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from actbench.results import Result
from actcore import ActError
from actcore.store import Store
from actfim.batch import SpectrumRecord

UnitKind = Literal["train", "fisher"]
FISHER_SEED = -1  # the seed column of a Fisher unit (its own seed is in the settings)


class UnitKey(BaseModel, frozen=True):
    """What to compute: ``kind`` for ``function`` (and ``seed`` for a training)."""

    function: str
    kind: UnitKind
    seed: int = FISHER_SEED


class UnitResult(BaseModel):
    """A finished unit: the training's :class:`actbench.Result` or the function's
    :class:`actfim.batch.SpectrumRecord`, typed from the worker to the file; ``cpu_s`` is
    the worker's CPU time and ``machine`` what computed it
    (:func:`actcore.machine.describe_machine`; None in stores written before act
    recorded it)."""

    key: UnitKey
    ok: bool
    reason: str = ""
    record: Result | SpectrumRecord
    cpu_s: float
    wall_s: float
    machine: str | None = None


class WorkStore(Store):
    """Finished units of one build, in a SQLite file (one transaction per batch)."""

    TABLES = (
        "CREATE TABLE IF NOT EXISTS units (function TEXT, kind TEXT, seed INTEGER,"
        " ok INTEGER, result TEXT, PRIMARY KEY (function, kind, seed))",
    )
    WHAT = "work store"
    HINT = "rerun with the same settings, or remove the store to start afresh"

    def __init__(self, path: str | os.PathLike[str], settings: dict):
        super().__init__(path, settings)
        with self._db:
            self._db.execute("PRAGMA journal_mode=WAL")  # readers (snapshot) never block

    @staticmethod
    def settings_of(path: str | os.PathLike[str]) -> dict:
        """The settings a store was made with (read only: safe while a build runs)."""
        if not Path(path).is_file():
            raise ActError(f"work store {path} does not exist")
        try:
            db = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
            try:
                row = db.execute("SELECT value FROM meta WHERE key='settings'").fetchone()
            finally:
                db.close()
        except sqlite3.DatabaseError as err:
            raise ActError(f"work store {path}: not a usable SQLite file: {err}") from None
        if row is None:
            raise ActError(f"work store {path} has no settings")
        return json.loads(row[0])

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def add_wall(self, seconds: float) -> float:
        """Add a session's wall time; returns the total over all sessions."""
        total = float(self.meta("wall_s") or 0.0) + seconds
        self.set_meta("wall_s", repr(total))
        return total

    def done(self) -> set[UnitKey]:
        rows = self._db.execute("SELECT function, kind, seed FROM units")
        return {UnitKey(function=f, kind=k, seed=s) for f, k, s in rows}

    def add(self, results: Iterable[UnitResult]) -> None:
        """Record finished units, all in one transaction."""
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO units VALUES (?, ?, ?, ?, ?)",
                [(r.key.function, r.key.kind, r.key.seed, int(r.ok), r.model_dump_json())
                 for r in results],
            )  # fmt: skip

    def results(self) -> Iterator[UnitResult]:
        for (text,) in self._db.execute("SELECT result FROM units ORDER BY rowid"):
            yield UnitResult.model_validate_json(text)

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM units").fetchone()[0]

