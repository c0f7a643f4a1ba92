"""actcore's hook specifications: operators, command groups, and the hook that lets
every other package add its own kinds.

A plugin is any object or module with functions marked ``@hookimpl`` whose names match a
specification. Third-party packages expose one through the ``act`` entry-point group,
exactly like act's own packages do::

    [project.entry-points.act]
    mything = "mypackage.act_plugin"

actcore owns the kinds it calls: ``act_operators``, ``act_cli`` and ``act_models`` (the
model a command names). A package that consumes a kind
of its own declares the hookspecs in its own ``hookspecs`` module and adds them from its
plugin's ``act_addhooks`` (as pytest plugins do with ``pytest_addhooks``): actbench adds
datasets, models, tasks, tables and optimizers, actsearch regressors and strategies. An
implementation of a hook nobody declared is an error when the plugins load.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

import pluggy

PROJECT = "act"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec(historic=True)
def act_addhooks(pluginmanager: pluggy.PluginManager) -> None:
    """Add a package's own hook specifications: ``pluginmanager.add_hookspecs(module)``.

    Called for every plugin as it is registered (historic), before its hooks are used.
    """


@hookspec
def act_operators() -> Iterable[Any]:
    """Return :class:`actcore.operators.Operator` objects (fixed or learnable)."""


@hookspec
def act_models() -> Iterable[Any]:
    """Return model builders: objects with a ``name``, a ``description`` and
    ``build(activation, input_shape, num_classes) -> nn.Module`` that puts the activation
    at every site. actcore looks models up by name (``--model allcnnc``); actbench's zoo
    implements this hook."""


@hookspec
def act_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add a command group to the ``act`` command line.

    Add parsers with ``subparsers.add_parser(...)`` and give each runnable command
    ``set_defaults(run=callable)``; ``callable(args)`` returns an exit status or None.
    """
