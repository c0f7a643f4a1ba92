"""actbench's act plugin: datasets, models, tasks and the ``act bench`` commands."""

from __future__ import annotations

import argparse

from actbench.datasets import DataSource, builtin_datasets
from actbench.models import Model, builtin_models
from actbench.tasks import Task, builtin_tasks
from actcore import hookimpl


@hookimpl
def act_datasets() -> list[DataSource]:
    return builtin_datasets()


@hookimpl
def act_models() -> list[Model]:
    return builtin_models()


@hookimpl
def act_tasks() -> list[Task]:
    return builtin_tasks()


@hookimpl
def act_cli(subparsers: argparse._SubParsersAction) -> None:
    from actbench import cli

    cli.add_bench(subparsers)


@hookimpl
def act_tables() -> list:
    from actbench.shipped import shipped_tables

    return shipped_tables()
