"""What a table build covers: its settings, and the plan of classes and work units."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from actbench.workstore import UnitKey
from actcore import Space, equivalence_classes


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
