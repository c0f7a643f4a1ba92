"""actsearch's act plugin: built-in regressors, strategies and the ``act search`` commands."""

from __future__ import annotations

import argparse

from actcore import hookimpl
from actsearch.regressors import Regressor, builtin_regressors
from actsearch.strategies import Strategy, builtin_strategies


@hookimpl
def act_addhooks(pluginmanager) -> None:
    from actsearch import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


@hookimpl
def act_regressors() -> list[Regressor]:
    return builtin_regressors()


@hookimpl
def act_strategies() -> list[Strategy]:
    return builtin_strategies()


@hookimpl
def act_cli(subparsers: argparse._SubParsersAction) -> None:
    from actsearch import cli

    cli.add_commands(subparsers)
