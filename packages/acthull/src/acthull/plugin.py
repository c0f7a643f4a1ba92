"""acthull's act plugin: the learnable ``convex_n``/``affine_n`` operators and ``act hull``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from torch import nn

from actcore import N_ARY, Operator, hookimpl
from acthull import cli
from acthull.hull import AffineHull, ConvexHull


def convex_n(args: Sequence[nn.Module]) -> ConvexHull:
    return ConvexHull(list(args))


def affine_n(args: Sequence[nn.Module]) -> AffineHull:
    return AffineHull(list(args))


@hookimpl
def act_operators() -> list[Operator]:
    return [
        Operator(
            "convex_n", N_ARY, module=convex_n,
            description="learnable convex combination (c >= 0, sum c = 1) of its arguments",
        ),
        Operator(
            "affine_n", N_ARY, module=affine_n,
            description="learnable affine combination (sum c = 1) of its arguments",
        ),
    ]


@hookimpl
def act_cli(subparsers: argparse._SubParsersAction) -> None:
    cli.add_commands(subparsers)
