"""Command-line options that several training commands share: ``act bench compare``,
``act bench build`` and ``act search run`` all take ``--stack``."""

from __future__ import annotations

import argparse


def add_stack(parser: argparse.ArgumentParser, default: str = "32 for dense networks on a "
              "CPU and any network on CUDA, else 1") -> None:
    parser.add_argument("--stack", type=int, metavar="K",
                        help=f"train K functions side by side as one network (1: one at a "
                             f"time; default: {default})")
