"""What a table build covers: its settings, and the plan of classes and work units.

A build runs its classes in a fixed shuffled order, not in the space's order, which groups
functions by their operators: so the classes finished at any moment of a long build (its
snapshot), and the classes of a ``limit``-ed build, are a uniform sample of the space.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from actbench.workstore import UnitKey
from actcore import Space, equivalence_classes
from actcore.device import parse_device


class BuildConfig(BaseModel):
    """What a table is built from; everything but ``limit``, ``data_root`` and ``device``
    (where the work runs, not what it computes) tags the work store, so a rerun with other
    settings cannot mix results."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str
    schemas: list[str] = Field(min_length=1)
    operators: list[str] | None = None
    seeds: int = Field(3, ge=1)
    overrides: dict[str, Any] = Field(default_factory=dict, description="recipe fields")
    fisher: Literal["mc", "empirical", "type2"] = "mc"
    fisher_batch: int = Field(128, ge=1)
    fisher_seed: int = 0
    limit: int | None = Field(
        None, ge=1, description="only the first N classes of the build order (a sample)"
    )
    data_root: str | None = None
    device: str | None = Field(
        None, description="cpu, cuda or cuda:N for every unit; None: CUDA on a worker "
        "that has it, else its CPU"
    )

    @field_validator("device")
    @classmethod
    def _device_name(cls, name: str | None) -> str | None:
        return name if name is None else str(parse_device(name))

    def settings(self) -> dict[str, Any]:
        return self.model_dump(exclude={"limit", "data_root", "device"})


BUILD_ORDER_SEED = 0  # fixes the shuffle: every build of a space runs the same order


def build_order(classes: int) -> list[int]:
    """Class numbers in the order a build runs them: a fixed shuffle of the space's order."""
    return np.random.default_rng(BUILD_ORDER_SEED).permutation(classes).tolist()


@dataclass(frozen=True)
class Plan:
    """The classes to build, in the space's order (the table's rows follow it), their
    other members, and the order in which the build runs them."""

    space: Space
    functions: int
    classes: int
    representatives: list[str]
    members: list[list[str]]
    order: list[int]  # indexes into ``representatives``, first built first

    def units(self, seeds: int) -> list[UnitKey]:
        """Each class's trainings and spectrum, classes in build order."""
        keys = []
        for index in self.order:
            rep = self.representatives[index]
            keys += [UnitKey(function=rep, kind="train", seed=s) for s in range(seeds)]
            keys.append(UnitKey(function=rep, kind="fisher"))
        return keys


def make_plan(config: BuildConfig, progress: bool = False) -> Plan:
    """Group the space into classes; with ``config.limit``, keep the first ``limit`` of the
    build order."""
    space = Space(*config.schemas, operators=config.operators)
    classes = equivalence_classes(space, progress=progress)
    reps = classes.representatives
    chosen = build_order(len(reps))[: config.limit]
    kept = sorted(chosen)
    position = {number: index for index, number in enumerate(kept)}
    return Plan(
        space, len(space), len(reps), [reps[n] for n in kept],
        [[m for m in classes.members(reps[n]) if m != reps[n]] for n in kept],
        [position[n] for n in chosen],
    )  # fmt: skip


def store_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".work.sqlite")
