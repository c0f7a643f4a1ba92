"""SQLite work files that remember the settings they were made with.

Long jobs (spectra batches, table builds, searches) keep finished work in an embedded
SQLite file so that a rerun resumes. Mixing results of different settings would be a
silent wrong answer, so a file is tagged with its settings on creation, and opening it
with other settings is an error that names what differs.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from actcore.errors import ActError


def open_store(
    path: str | os.PathLike[str],
    settings: dict[str, Any] | None,
    tables: Iterable[str],
    *,
    what: str,
    hint: str = "use another file, or the original settings",
) -> sqlite3.Connection:
    """Open (or create) ``path`` with the ``CREATE TABLE`` statements ``tables``.

    ``settings`` (JSON-serialisable) are stored on creation and compared on reopening;
    ``None`` skips the check. ``what`` names the file in errors ("study file", ...).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        db = sqlite3.connect(path, timeout=60)
        with db:
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            for statement in tables:
                db.execute(statement)
    except sqlite3.DatabaseError as err:
        raise ActError(f"{what} {path} is not a usable SQLite file: {err}") from None
    if settings is not None:
        _check_settings(db, path, settings, what, hint)
    return db


def _check_settings(
    db: sqlite3.Connection, path: Path, settings: dict[str, Any], what: str, hint: str
) -> None:
    text = json.dumps(settings, sort_keys=True)
    row = db.execute("SELECT value FROM meta WHERE key='settings'").fetchone()
    if row is None:
        with db:
            db.execute("INSERT INTO meta VALUES ('settings', ?)", (text,))
        return
    if row[0] == text:
        return
    old = json.loads(row[0])
    diff = ", ".join(
        f"{key}: {old.get(key)!r} -> {settings.get(key)!r}"
        for key in sorted(set(old) | set(settings))
        if old.get(key) != settings.get(key)
    )
    raise ActError(f"{what} {path} holds work done with other settings ({diff}); {hint}")


class Store:
    """Base of act's work files: a subclass names its tables (``TABLES``), what it is
    (``WHAT``, for errors) and what to do on a settings clash (``HINT``); the opening,
    settings check, closing and ``with`` support live here once."""

    TABLES: tuple[str, ...] = ()
    WHAT = "work file"
    HINT = "use another file, or the original settings"

    def __init__(self, path: str | os.PathLike[str], settings: dict[str, Any] | None):
        self.path = Path(path)
        self._db = open_store(self.path, settings, self.TABLES, what=self.WHAT,
                              hint=self.HINT)

    @property
    def settings(self) -> dict[str, Any] | None:
        """The settings the file was made with (None: made without)."""
        row = self._db.execute("SELECT value FROM meta WHERE key='settings'").fetchone()
        return None if row is None else json.loads(row[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
