"""``act hull ...`` commands: look at learned hull activations."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from actcore.cli import add_group, add_output, output_path
from actcore.console import log
from actcore.errors import ActError
from acthull.checkpoint import load_layers
from acthull.inspection import HULL_TYPES, coefficients, is_monotonic, plot_functions
from acthull.trajectory import Trajectories


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    commands = add_group(subparsers, "hull", "learnable hull activations (acthull)")

    show = commands.add_parser(
        "show",
        help="print the learned coefficients of a checkpoint and plot every layer's function",
        description="CHECKPOINT is written by acthull.save_checkpoint(path, model).",
    )
    show.add_argument("checkpoint", type=Path)
    add_output(show, None, "PNG of the learned functions", figure=True)
    show.add_argument("--range", nargs=2, type=float, default=(-5.0, 5.0), metavar=("LO", "HI"))
    show.set_defaults(run=run_show)

    trajectory = commands.add_parser(
        "trajectory", help="plot coefficient trajectories saved by a CoefficientRecorder"
    )
    trajectory.add_argument("trajectories", type=Path, help="JSON file")
    add_output(trajectory, "hull-trajectory.png", "PNG file", figure=True)
    trajectory.set_defaults(run=run_trajectory)


def run_show(args: argparse.Namespace) -> int:
    lo, hi = args.range
    layers = load_layers(args.checkpoint)
    for name, layer in layers.items():
        for values in coefficients(layer).values():
            if not torch.isfinite(values).all():
                raise ActError(f"{args.checkpoint}: layer {name!r} has non-finite hull "
                               "coefficients (the training diverged); nothing to show")
    for name, layer in layers.items():
        mono = "monotonic" if is_monotonic(layer, lo, hi) else "not monotonic"
        print(f"{name}: {layer.expression}  [{mono} on [{lo:g}, {hi:g}]]")
        hulls = {n: m for n, m in layer.named_modules() if isinstance(m, HULL_TYPES)}
        for values, hull in zip(coefficients(layer).values(), hulls.values()):
            if hull.expression != layer.expression:
                print(f"  {hull.expression}")
            for base, row in zip(hull.base_names, values):
                if row.dim() == 0:
                    print(f"    {base:<24} {row.item():+.4f}")
                else:
                    print(f"    {base:<24} {row.mean().item():+.4f} (mean of {row.numel()} "
                          f"channels, {row.min().item():+.4f} to {row.max().item():+.4f})")
    out = output_path(args)
    if out is not None:
        log.info(f"wrote {plot_functions(layers, out, lo, hi)}")
    return 0


def run_trajectory(args: argparse.Namespace) -> int:
    log.info(f"wrote {Trajectories.load(args.trajectories).plot(output_path(args))}")
    return 0

