"""``act hull ...`` commands."""

from __future__ import annotations

import argparse


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("hull", help="learnable hull activations (acthull)")
    parser.set_defaults(help_parser=parser)
