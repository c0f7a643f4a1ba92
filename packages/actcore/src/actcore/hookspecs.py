"""Hook specifications of act: every kind of plugin in one place.

A plugin is any object or module with functions marked ``@hookimpl`` whose names match
the specifications below. Third-party packages expose one through the ``act`` entry-point
group, exactly like act's own packages do::

    [project.entry-points.act]
    mything = "mypackage.act_plugin"

Each ``act_<kind>`` hook returns an iterable of items that have a ``name`` attribute; the
:mod:`actcore.plugins` registry collects them per kind and rejects name clashes. Adding a
kind is one hook here plus one :class:`actcore.plugins.Kind` where it is consumed.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

import pluggy

PROJECT = "act"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def act_operators() -> Iterable[Any]:
    """Return :class:`actcore.operators.Operator` objects (fixed or learnable)."""


@hookspec
def act_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add a command group to the ``act`` command line.

    Add parsers with ``subparsers.add_parser(...)`` and give each runnable command
    ``set_defaults(run=callable)``; ``callable(args)`` returns an exit status or None.
    """


@hookspec
def act_regressors() -> Iterable[Any]:
    """Return surrogate regressors (see actsearch) that predict accuracy from embeddings."""


@hookspec
def act_strategies() -> Iterable[Any]:
    """Return search strategies (see actsearch) that choose what to evaluate next."""


@hookspec
def act_datasets() -> Iterable[Any]:
    """Return datasets (see actbench)."""


@hookspec
def act_models() -> Iterable[Any]:
    """Return model builders (see actbench) that take the activation as a parameter."""


@hookspec
def act_tasks() -> Iterable[Any]:
    """Return tasks (see actbench): a dataset, a model and a training recipe."""


@hookspec
def act_tables() -> Iterable[Any]:
    """Return named benchmark tables (see actbench) shipped by a package."""
