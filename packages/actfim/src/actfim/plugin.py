"""actfim's act plugin: its hook (a dataset's batch) and the ``act fim`` command group."""

from __future__ import annotations

import argparse

from actcore.hookspecs import hookimpl
from actfim import cli


@hookimpl
def act_addhooks(pluginmanager) -> None:
    from actfim import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


@hookimpl
def act_cli(subparsers: argparse._SubParsersAction) -> None:
    cli.add_commands(subparsers)
