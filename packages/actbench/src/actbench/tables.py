"""Benchmark tables in the Act-Bench JSON schema: load, query, filter, write.

A table is a JSON object keyed by function name (``.json`` or gzip-compressed
``.json.gz``); each value holds the accuracies and losses of one *unique* function, the
names of the functions equivalent to it and its Fisher log-eigenvalue CDF (the
Act-Bench benchmark-table format). The public Act-Bench files and act's own tables share
the schema, so search replay works on either. Packages ship named tables through the ``act_tables``
hook; :func:`load_table` accepts a path or such a name.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from actcore.atomic import write_atomic
from actcore.errors import ActError, UnknownNameError

CHANCE = 0.1  # CIFAR-10 and the other ten-class tasks of the published tables
#: A run within this of chance accuracy learned nothing: it counts as failed.
FAILED_MARGIN = 1e-3


def chance_accuracy(num_classes: int) -> float:
    """The accuracy of guessing among ``num_classes`` balanced classes; a failed run
    (an activation that crashes or diverges) is recorded at this accuracy."""
    return 1.0 / num_classes


def is_failed(val_accuracy: float, chance: float, *others: float) -> bool:
    """The one definition of a failed training: a validation accuracy (or any of
    ``others``: losses, other accuracies) that is not finite, or an accuracy within
    :data:`FAILED_MARGIN` of chance. Tables, builds and searches all use it."""
    if not all(math.isfinite(v) for v in (val_accuracy, *others)):
        return True
    return val_accuracy <= chance + FAILED_MARGIN


class TableRecord(BaseModel):
    """One function's row; field aliases are the exact keys of the JSON schema."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    train_accuracy: float = Field(alias="Train Accuracy")
    val_accuracy: float = Field(alias="Validation Accuracy")
    train_loss: float = Field(alias="Train Loss")
    val_loss: float = Field(alias="Validation Loss")
    test_accuracy: float = Field(alias="Test Accuracy")
    test_loss: float = Field(alias="Test Loss")
    equivalent: list[str] = Field(default_factory=list, alias="Equivalent Activation Functions")
    fisher_cdf: list[float] = Field(default_factory=list, alias="Fisher log eigenvalue CDF")
    runtime: float = Field(default=float("nan"), alias="Runtime (s)")

    @field_validator("train_accuracy", "val_accuracy", "test_accuracy")
    @classmethod
    def _a_fraction(cls, value: float) -> float:
        if not math.isnan(value) and not 0.0 <= value <= 1.0:
            raise ValueError(
                f"accuracy {value} is outside [0, 1]: tables store fractions "
                "(divide percentages by 100)"
            )
        return value

    @property
    def has_fisher(self) -> bool:
        """A usable spectrum: present and finite (else the function is likely to fail)."""
        return bool(self.fisher_cdf) and all(math.isfinite(v) for v in self.fisher_cdf)

    def to_json(self) -> dict[str, object]:
        return self.model_dump(by_alias=True)


@dataclass(frozen=True)
class NamedTable:
    """A table a package ships, registered through the ``act_tables`` hook. A package may
    register one whose file it cannot provide yet (a build not finished): ``unavailable``
    then says why, and how to get it, to whoever asks for it by name."""

    name: str
    path: Path
    description: str = ""
    chance: float = CHANCE
    unavailable: str = ""


class Table(Mapping[str, TableRecord]):
    """Rows keyed by the unique function's name; any equivalent name finds its row."""

    def __init__(
        self, records: Mapping[str, TableRecord], *, source: str = "<memory>",
        chance: float = CHANCE,
    ):
        self.records = dict(records)
        self.source = source
        self.chance = chance
        self._alias: dict[str, str] = {}
        for name, record in self.records.items():
            for alias in record.equivalent:
                self._alias.setdefault(alias, name)
        self._alias.update({name: name for name in self.records})  # a row's own key wins

    # Mapping: keys are the unique functions (one per equivalence class).
    def __getitem__(self, name: str) -> TableRecord:
        return self.records[self.canonical(name)]

    def __iter__(self) -> Iterator[str]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, name: object) -> bool:
        return name in self._alias

    def canonical(self, name: str) -> str:
        """The row name of ``name``'s equivalence class; unknown names list close ones."""
        try:
            return self._alias[name]
        except KeyError:
            raise UnknownNameError(
                f"function in table {self.source}", name, self.records
            ) from None

    def names(self) -> list[str]:
        """The unique functions, in file order."""
        return list(self.records)

    def failed(self, name: str) -> bool:
        """Training failed: a non-finite number or validation accuracy at chance."""
        r = self[name]
        return is_failed(r.val_accuracy, self.chance, r.train_accuracy, r.val_loss,
                         r.test_accuracy)

    def successful(self) -> Table:
        """The table without failed functions."""
        kept = {n: r for n, r in self.records.items() if not self.failed(n)}
        return Table(kept, source=self.source, chance=self.chance)

    def best(self, metric: str = "val_accuracy") -> str:
        """Name of the function with the highest ``metric`` (a :class:`TableRecord` field)."""
        if metric not in TableRecord.model_fields:
            raise UnknownNameError("table metric", metric, TableRecord.model_fields)
        scored = [
            (getattr(r, metric), n) for n, r in self.records.items()
            if math.isfinite(getattr(r, metric))
        ]
        if not scored:
            raise ActError(f"table {self.source}: no function has a finite {metric}")
        return max(scored, key=lambda t: t[0])[1]

    @property
    def has_fisher(self) -> bool:
        """Whether any row has a Fisher CDF (the ``fisher`` feature set needs them)."""
        return any(r.fisher_cdf for r in self.records.values())


def table_from_json(data: object, source: str, chance: float = CHANCE) -> Table:
    """Validate decoded JSON into a :class:`Table`; problems name the row and the field."""
    if not isinstance(data, dict):
        raise ActError(f"{source}: expected a JSON object keyed by function name, "
                       f"got {type(data).__name__}")
    if not data:
        raise ActError(f"{source}: the table is empty")
    records: dict[str, TableRecord] = {}
    for name, row in data.items():
        try:
            records[name] = TableRecord.model_validate(row)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ActError(
                f"{source}: row {name!r}: field {where!r}: {first['msg']}"
            ) from None
    return Table(records, source=source, chance=chance)


def read_table(path: str | os.PathLike[str], chance: float = CHANCE) -> Table:
    """Load a ``.json`` or ``.json.gz`` table from ``path``."""
    path = Path(path)
    if not path.is_file():
        raise ActError(f"table file {path} does not exist" if not path.exists()
                       else f"table path {path} is not a file")
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        data = json.loads(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise ActError(f"table file {path}: cannot read it: {err}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ActError(f"table file {path}: not valid JSON: {err}") from None
    return table_from_json(data, str(path), chance)


def named_tables() -> dict[str, NamedTable]:
    """The tables registered by installed packages that can be read here, by name."""
    from actbench.hookspecs import TABLES
    from actcore.plugins import registry

    return {t.name: t for t in registry(TABLES) if not getattr(t, "unavailable", "")}


def load_table(source: str | os.PathLike[str]) -> Table:
    """A table from a file path, or by the name a package registered it under."""
    path = Path(source)
    if path.exists() or str(source).endswith((".json", ".json.gz")):
        return read_table(path)
    from actbench.hookspecs import TABLES
    from actcore.plugins import registry

    tables = registry(TABLES)
    if str(source) not in tables:
        raise ActError(
            f"table {str(source)!r} is neither an existing file nor a registered table"
            + (f" (registered: {', '.join(tables.names())})" if len(tables) else "")
        )
    named = tables.get(str(source))
    if getattr(named, "unavailable", ""):
        raise ActError(f"table {named.name!r}: {named.unavailable}")
    return read_table(named.path, chance=getattr(named, "chance", CHANCE))


def write_table(
    path: str | os.PathLike[str],
    records: Mapping[str, TableRecord] | Iterable[tuple[str, TableRecord]],
) -> Path:
    """Write rows atomically (temp file + rename); ``.gz`` paths are gzip-compressed."""
    path = Path(path)
    items = records.items() if isinstance(records, Mapping) else records
    data = {name: record.to_json() for name, record in items}
    payload = json.dumps(data, indent=1, allow_nan=True).encode()
    if path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    return write_atomic(path, payload)
