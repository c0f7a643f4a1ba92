"""actbench's plugin kinds: datasets, tasks, benchmark tables and optimizers (models are
actcore's kind, which actbench's zoo implements; ``MODELS`` is here too for actbench's
code).

actbench adds these hook specifications to act's plugin manager from its plugin's
``act_addhooks``; any installed package may then implement them. The :class:`Kind`
objects below are how code looks the items up: ``registry(MODELS).get("allcnnc")``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from actcore.hookspecs import hookspec
from actcore.plugins import MODELS as MODELS  # declared by actcore, which calls it
from actcore.plugins import Kind

DATASETS: Kind[Any] = Kind("dataset", "act_datasets")
TASKS: Kind[Any] = Kind("task", "act_tasks")
TABLES: Kind[Any] = Kind("table", "act_tables")
OPTIMIZERS: Kind[Any] = Kind("optimizer", "act_optimizers")


@hookspec
def act_datasets() -> Iterable[Any]:
    """Return datasets (:class:`actbench.datasets.DataSource`)."""


@hookspec
def act_tasks() -> Iterable[Any]:
    """Return tasks (:class:`actbench.tasks.Task`): a dataset, a model and a recipe."""


@hookspec
def act_tables() -> Iterable[Any]:
    """Return named benchmark tables shipped by a package."""


@hookspec
def act_optimizers() -> Iterable[Any]:
    """Return optimizers (:class:`actbench.optimizers.Optimizer`) recipes can name."""
