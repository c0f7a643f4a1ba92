"""``act bench build`` and ``act bench snapshot``: the command lines of
:func:`actbench.build.build` and :func:`actbench.build.write_snapshot`."""

from __future__ import annotations

import argparse
import signal

from actbench.build import build, write_snapshot
from actbench.build_plan import BuildConfig
from actbench.options import add_set, add_stack
from actbench.recipes import parse_overrides
from actcore import ActError
from actcore.cli import add_device, add_normalize, add_operators, add_output, output_path
from actcore.console import log


def add_command(commands: argparse._SubParsersAction) -> None:
    """Register ``act bench build`` on the ``act bench`` subcommands."""
    cmd = commands.add_parser(
        "build", help="build an Act-Bench table: train every class of a space (resumable)"
    )
    cmd.add_argument("--task", "-t", required=True, help="task name (act bench tasks)")
    cmd.add_argument("--space", action="append", required=True, metavar="SCHEMA",
                     help="schema, e.g. 'binary(unary(x),unary(x))' (repeat for a union)")
    add_operators(cmd)
    cmd.add_argument("--seeds", type=int, default=3, help="train seeds 0..N-1 (default 3)")
    add_output(cmd, "bench-build-{task}.json.gz", "the table, TABLE.json[.gz]")
    cmd.add_argument("--workers", type=int,
                     help="parallel worker processes (default: all cores, or one per GPU for "
                          "work on CUDA; 0: in process)")
    cmd.add_argument("--scheduler", metavar="ADDRESS",
                     help="run on a Dask cluster (tcp://host:8786, or 'local' to start one)")
    cmd.add_argument("--limit", type=int, metavar="N",
                     help="only N classes, a uniform sample of the space (a smoke run, a pilot)")
    cmd.add_argument("--per-task", type=int, default=2,
                     help="functions per submitted task (default 2)")
    add_stack(cmd)  # a worker call gets K functions
    cmd.add_argument("--epochs", type=int, help="override the recipe's epochs")
    add_set(cmd)
    add_normalize(cmd)
    cmd.add_argument("--fisher", choices=["mc", "empirical", "type2"], default="mc")
    cmd.add_argument("--fisher-batch", type=int, default=128, help="examples for the Fisher")
    cmd.add_argument("--data-root", help="data folder (default $ACT_DATA)")
    add_device(cmd)  # on a Dask cluster, default: each worker's own
    cmd.set_defaults(run=run_build)

    snap = commands.add_parser(
        "snapshot", help="write the rows a build has finished so far (a uniform sample)"
    )
    snap.add_argument("build", metavar="BUILD",
                      help="the build's --out, TABLE.json[.gz] (its work store is beside it)")
    add_output(snap, "bench-snapshot.json.gz", "the partial table, with its card")
    snap.set_defaults(run=run_snapshot)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_build(args: argparse.Namespace) -> int:
    overrides = parse_overrides(args.set, args.epochs, args.normalize)
    if args.seeds < 1:
        raise ActError(f"--seeds must be at least 1, got {args.seeds}")
    if args.limit is not None and args.limit < 1:
        raise ActError(f"--limit must be at least 1, got {args.limit}")
    if args.fisher_batch < 1:
        raise ActError(f"--fisher-batch must be at least 1, got {args.fisher_batch}")
    config = BuildConfig(
        task=args.task, schemas=args.space, operators=args.operators, seeds=args.seeds,
        overrides=overrides, fisher=args.fisher, fisher_batch=args.fisher_batch,
        limit=args.limit, data_root=args.data_root, device=args.device,
    )  # fmt: skip
    previous = signal.signal(signal.SIGTERM, _interrupt)  # kill: stop workers, keep work
    try:
        summary = build(config, output_path(args, task=args.task), workers=args.workers,
                        scheduler=args.scheduler, per_task=args.per_task, stack=args.stack)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"{summary.computed} units computed, {summary.reused} reused of {summary.units} "
          f"({summary.trainings} trainings) in {summary.wall_s:.0f}s; "
          f"work store {summary.store}")  # fmt: skip
    if summary.out is None:
        print(f"table not written: {summary.units - summary.computed - summary.reused} "
              f"units missing ({summary.lost} lost to failed batches); rerun to finish")
        return 1
    log.info(f"table written to {summary.out}, card {summary.card}")
    return 0


def run_snapshot(args: argparse.Namespace) -> int:
    out = output_path(args)
    card = write_snapshot(args.build, out)
    print(f"{card.rows} of {card.classes} classes written to {out} "
          f"({card.failed} failed at chance, {card.fisher_invalid} without a spectrum)")
    return 0
