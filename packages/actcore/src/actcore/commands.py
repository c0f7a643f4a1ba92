"""actcore's command-line commands: ``act ops``, ``act space``, ``act fn``."""

from __future__ import annotations

import argparse

from actcore.operators import N_ARY
from actcore.plugins import OPERATORS, registry


def add_ops(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ops", help="list every operator and its plugin")
    parser.set_defaults(run=run_ops)


def run_ops(args: argparse.Namespace) -> int:
    ops = registry(OPERATORS)
    width = max(len(name) for name in ops.names())
    print(f"{'operator':<{width}}  arity  plugin")
    for entry in ops.entries():
        arity = "n" if entry.item.arity == N_ARY else str(entry.item.arity)
        kind = " (learnable)" if entry.item.learnable else ""
        print(f"{entry.name:<{width}}  {arity:>5}  {entry.plugin}{kind}")
    print(f"{len(ops)} operators")
    return 0
