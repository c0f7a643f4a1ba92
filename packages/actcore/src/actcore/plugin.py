"""actcore's own plugin: the published operators and the core command groups.

It is loaded through the ``act`` entry-point group like any third-party plugin.
"""

from __future__ import annotations

import argparse

from actcore import commands
from actcore.hookspecs import hookimpl
from actcore.operators import Operator, builtin_operators


@hookimpl
def act_operators() -> list[Operator]:
    return builtin_operators()


@hookimpl
def act_cli(subparsers: argparse._SubParsersAction) -> None:
    commands.add_ops(subparsers)
    commands.add_space(subparsers)
    commands.add_fn(subparsers)
