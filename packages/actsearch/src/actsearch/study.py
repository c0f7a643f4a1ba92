"""The study file of a live search: an embedded SQLite database.

It holds the search's settings and every finished evaluation, one committed transaction
per evaluation, so a search stopped by Ctrl-C or a crash loses only the trainings that
were still running; running the same command again continues from the file.
"""

from __future__ import annotations

import json
import math
import os
import time

from pydantic import BaseModel, ValidationError

from actbench.results import Result
from actcore.errors import ActError
from actcore.store import Store


class Evaluation(BaseModel):
    """One finished training of one function (an equivalence-class representative)."""

    function: str
    val_accuracy: float
    test_accuracy: float
    status: str
    seconds: float
    order: int
    result: Result


class Study(Store):
    """Settings plus finished evaluations; opening with other settings is an error."""

    TABLES = (
        "CREATE TABLE IF NOT EXISTS evaluations (function TEXT PRIMARY KEY,"
        " ord INTEGER, val_accuracy REAL, test_accuracy REAL, status TEXT,"
        " seconds REAL, finished REAL, result TEXT)",
    )
    WHAT = "study file"
    HINT = "use another --out folder or the original settings"

    def __init__(self, path: str | os.PathLike[str], settings: dict):
        super().__init__(path, settings)
        with self._db:  # trainings a dead worker broke off (earlier act stored them as
            # rows without accuracy): not results; the search runs them again
            self.dropped = self._db.execute(
                "DELETE FROM evaluations WHERE val_accuracy IS NULL OR test_accuracy IS NULL"
            ).rowcount

    def evaluations(self) -> list[Evaluation]:
        """Finished evaluations in the order they finished."""
        rows = self._db.execute(
            "SELECT function, val_accuracy, test_accuracy, status, seconds, ord, result "
            "FROM evaluations ORDER BY ord"
        ).fetchall()
        evaluations = []
        for f, v, t, s, sec, o, r in rows:
            try:
                evaluations.append(Evaluation(function=f, val_accuracy=v, test_accuracy=t,
                                              status=s, seconds=sec, order=o,
                                              result=Result.model_validate(json.loads(r))))
            except (ValidationError, TypeError, ValueError) as err:
                raise ActError(
                    f"study file {self.path}: the row of {f!r} cannot be read ({err}); "
                    "delete that row (or the file) to train that function again"
                ) from None
        return evaluations

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]

    def add(self, function: str, result: Result) -> Evaluation:
        """Record a finished training (its own transaction)."""
        if not all(math.isfinite(v) for v in (result.val_accuracy, result.test_accuracy)):
            raise ValueError(f"{function}: a result without finite accuracies is no result")
        evaluation = Evaluation(
            function=function, val_accuracy=result.val_accuracy,
            test_accuracy=result.test_accuracy, status=result.status,
            seconds=result.runtime_s, order=len(self), result=result,
        )
        with self._db:
            self._db.execute(
                "INSERT INTO evaluations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (function, evaluation.order, evaluation.val_accuracy,
                 evaluation.test_accuracy, evaluation.status, evaluation.seconds, time.time(),
                 json.dumps(result.model_dump())),
            )
        return evaluation

