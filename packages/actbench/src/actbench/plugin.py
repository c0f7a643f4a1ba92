"""actbench's act plugin: its plugin kinds, the built-in datasets, models, tasks,
optimizers and tables, and the ``act bench`` commands."""

from __future__ import annotations

import argparse

from actbench.datasets import DataSource, builtin_datasets
from actbench.models import Model, builtin_models
from actbench.tasks import Task, builtin_tasks
from actcore import hookimpl


@hookimpl
def act_addhooks(pluginmanager) -> None:
    from actbench import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


@hookimpl
def act_optimizers() -> list:
    from actbench.optimizers import builtin_optimizers

    return builtin_optimizers()


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
def act_dataset_batch(dataset: str, size: int, seed: int, root: str | None, download: bool):
    """actfim's ``--dataset``: a Fisher batch of one of actbench's datasets."""
    from actbench.fisher import fisher_batch
    from actbench.hookspecs import DATASETS
    from actcore.plugins import registry
    from actfim.hookspecs import DatasetBatch

    source = registry(DATASETS).get(dataset)
    inputs, targets = fisher_batch(dataset, size, seed, root, download)
    return DatasetBatch(inputs, targets, tuple(source.input_shape), int(source.num_classes))


@hookimpl
def act_tables() -> list:
    from actbench.shipped import shipped_tables

    return shipped_tables()
