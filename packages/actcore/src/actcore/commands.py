"""actcore's command-line commands: ``act ops``, ``act space``, ``act fn``."""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Iterable

from actcore.cli import add_group, add_normalize, add_operators, add_output, output_path
from actcore.console import log
from actcore.equivalence import equivalence_classes
from actcore.errors import ActError
from actcore.operators import N_ARY
from actcore.plugins import OPERATORS, registry
from actcore.space import Space


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
        kind += " (extended)" if entry.item.extended else ""
        print(f"{entry.name:<{width}}  {arity:>5}  {entry.plugin}{kind}")
    print(f"{len(ops)} operators")
    return 0


def _operator_options(parser: argparse.ArgumentParser) -> None:
    add_operators(parser)
    parser.add_argument(
        "--extended",
        action="store_true",
        help="add the extended unary operators (elish, leakyrelu, mish, gelu)",
    )


def _space(args: argparse.Namespace, schemas: list[str]) -> Space:
    return Space(*schemas, operators=args.operators, extended=args.extended)


def _progress() -> bool:
    return sys.stderr.isatty()


def add_space(subparsers: argparse._SubParsersAction) -> None:
    commands = add_group(subparsers, "space", "count and list search spaces")

    def command(name: str, run, help: str, description: str) -> argparse.ArgumentParser:
        """A space command: schemas, then the operator options."""
        parser = commands.add_parser(name, help=help, description=description)
        parser.add_argument("schemas", nargs="+", metavar="SCHEMA")
        _operator_options(parser)
        parser.set_defaults(run=run)
        return parser

    count = command(
        "count", run_space_count,
        "number of functions (or equivalence classes) in the union of schemas",
        "Print the number of functions in the union of the schemas (the number is the "
        "last line); with --unique, the number of equivalence classes.",
    )
    count.add_argument("--unique", action="store_true", help="count equivalence classes")
    listing = command(
        "list", run_space_list, "list the functions of a schema",
        "Print the functions of the schema(s), one per line, in space order; with "
        "--unique, one representative per equivalence class.",
    )
    listing.add_argument("--unique", action="store_true", help="only class representatives")
    listing.add_argument("--limit", type=int, metavar="N", help="print at most N lines")
    sample = command(
        "sample", run_space_sample, "draw functions uniformly at random without replacement",
        "Print N distinct functions of the union of the schemas, drawn uniformly at random "
        "(the same for the same --seed).",
    )
    sample.add_argument("-n", type=int, default=10, metavar="N", help="how many (default 10)")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def run_space_sample(args: argparse.Namespace) -> int:
    for expr in _space(args, args.schemas).sample(args.n, seed=args.seed):
        print(expr)
    return 0


def run_space_count(args: argparse.Namespace) -> int:
    space = _space(args, args.schemas)
    if len(space.schemas) > 1:
        for schema, new in zip(space.schemas, space.sizes):
            print(f"{schema}: {new} functions")
    if args.unique:
        print(len(equivalence_classes(space, progress=_progress())))
    else:
        print(space.count())
    return 0


def run_space_list(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 0:
        raise ActError(f"--limit must be at least 0, got {args.limit}")
    space = _space(args, args.schemas)
    names: Iterable[object] = (
        equivalence_classes(space, progress=_progress()).representatives
        if args.unique
        else space
    )
    for name in itertools.islice(names, args.limit):
        print(name)
    return 0


def add_fn(subparsers: argparse._SubParsersAction) -> None:
    commands = add_group(subparsers, "fn", "look at activation functions")
    plot = commands.add_parser(
        "plot",
        help="plot functions on [-5, 5] in one figure",
        description="Plot the functions on [-5, 5] in one PNG figure.",
    )
    plot.add_argument("functions", nargs="+", metavar="EXPR")
    add_output(plot, "functions.png", "PNG file", figure=True)
    add_normalize(plot)
    plot.set_defaults(run=run_fn_plot)


def run_fn_plot(args: argparse.Namespace) -> int:
    from actcore.plot import plot_functions

    out = output_path(args)
    plot_functions(args.functions, out, normalize=args.normalize)
    log.info(f"wrote {out}")
    return 0
