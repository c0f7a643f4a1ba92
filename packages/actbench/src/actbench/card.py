"""The table card: how a benchmark table was made, saved beside it as ``NAME.card.json``.

``TABLE.json.gz`` gets ``TABLE.card.json``: the task and its recipe, the split sizes, the
seeds, the space (schemas, operators, functions, classes), the versions of act and torch,
the hardware, the machines that computed its units, and the cost of the build (total
worker CPU time, wall time over all sessions).
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import torch
from pydantic import BaseModel, Field

from actcore.atomic import write_atomic
from actcore.machine import cpu_model
from actcore.versions import package_version


class TableCard(BaseModel):
    """Provenance and cost of one benchmark table."""

    table: str = Field(description="file name of the table")
    task: str
    dataset: str
    model: str
    recipe: dict
    #: images per split as trained and measured (train after ``train_images``)
    splits: dict[str, int] | None = None
    seeds: list[int]
    aggregate: str = "median over seeds (accuracies, losses, runtime)"
    schemas: list[str]
    operators: list[str]
    functions: int = Field(description="functions in the space")
    classes: int = Field(description="equivalence classes in the space")
    rows: int = Field(description="classes in the table (fewer with --limit)")
    complete: bool = Field(description="every class of the space is in the table")
    failed: int = Field(description="rows whose median run failed (chance accuracy)")
    fisher: dict = Field(description="Fisher settings (same initial weights for all)")
    fisher_invalid: int = Field(description="rows without a valid spectrum (empty CDF)")
    nonfinite_policy: str
    versions: dict[str, str]
    hardware: dict[str, str | int]
    #: units computed on each machine (:func:`actcore.machine.describe_machine`); a build
    #: across sittings or a cluster can mix machines, whose float32 results differ by
    #: rounding. Units stored before act recorded it count under :data:`NOT_RECORDED`.
    machines: dict[str, int] = {}
    workers: str
    cpu_s: float = Field(description="CPU time of the finished units of its classes, all sessions")
    wall_s: float = Field(description="wall time of all build sessions")
    created: str


NOT_RECORDED = "not recorded"


def versions() -> dict[str, str]:
    """Versions of the act packages installed here, torch and Python."""
    found = {"python": platform.python_version()}
    for name in ("actcore", "actbench", "actfim", "torch", "numpy"):
        installed = package_version(name)
        if installed != "0+unknown":
            found[name] = installed
    return found


def hardware() -> dict[str, str | int]:
    """The machine that wrote the card: CPU model, torch's CPU kernels, cores, OS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return {"cpu": cpu_model(), "kernels": torch.backends.cpu.get_cpu_capability(),
            "cores": cores, "system": f"{platform.system()} {platform.release()}",
            "python": sys.version.split()[0]}  # fmt: skip


def card_path(table: str | os.PathLike[str]) -> Path:
    """``x/NAME.json[.gz]`` → ``x/NAME.card.json``."""
    path = Path(table)
    name = path.name
    for suffix in (".json.gz", ".json", ".gz"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(name + ".card.json")


def write_card(card: TableCard, path: str | os.PathLike[str]) -> Path:
    """Write the card atomically (temporary file, then rename)."""
    return write_atomic(path, card.model_dump_json(indent=1))


def read_card(path: str | os.PathLike[str]) -> TableCard:
    return TableCard.model_validate_json(Path(path).read_text())
