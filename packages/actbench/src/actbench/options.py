"""Command-line options that several training commands share: ``act bench compare``,
``act bench build`` and ``act search run`` all take ``--stack`` and ``--set``."""

from __future__ import annotations

import argparse


def add_stack(parser: argparse.ArgumentParser, default: str = "32 for dense networks on a "
              "CPU and any network on CUDA, else 1") -> None:
    parser.add_argument("--stack", type=int, metavar="K",
                        help=f"train K functions side by side as one network (1: one at a "
                             f"time; default: {default})")


def add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a field of the task's recipe (repeatable), e.g. "
                             "--set lr=0.01 or --set precision=bfloat16")
