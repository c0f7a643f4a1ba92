"""The ``act`` command: one entry point whose command groups come from plugins.

Every installed act package (and any third-party plugin) adds its group through the
``act_cli`` hook. Errors a user can fix (:class:`ActError`) print one line on stderr and
exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from actcore import plugins
from actcore.atomic import make_parent
from actcore.console import NORMAL, QUIET, VERBOSE, configure
from actcore.errors import ActError
from actcore.plot import figure_path
from actcore.versions import install_hint


def add_group(
    subparsers: argparse._SubParsersAction, name: str, help: str
) -> argparse._SubParsersAction:
    """Add a command group (``act NAME COMMAND ...``) and return its subcommand action.

    ``act NAME`` alone prints the group's help.
    """
    group = subparsers.add_parser(name, help=help)
    group.set_defaults(help_parser=group)
    return group.add_subparsers(dest=f"{name}_command", metavar="COMMAND")


def int_at_least(minimum: int):
    """An argparse ``type``: a whole number of at least ``minimum`` (a clear usage error
    otherwise, not a traceback from deep inside)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


#: Where commands write when not told: one folder under the working directory.
OUTPUT_ROOT = "act-out"


def add_output(parser: argparse.ArgumentParser, default: str | None, what: str,
               figure: bool = False) -> None:
    """The one output option of act's commands: ``-o/--out PATH``. ``default`` (a name
    under ``act-out/`` that may hold ``{fields}`` filled in by :func:`output_path`; None:
    nothing is written unless asked) is shown in ``--help``; a ``figure``'s name is
    checked as the options are read (:func:`actcore.plot.figure_path`), not after the
    work whose result it draws. Missing folders are created."""
    shown = f"default: {OUTPUT_ROOT}/{default}" if default else "optional"
    parser.add_argument("-o", "--out", type=figure_path if figure else Path, default=None,
                        metavar="FILE.png" if figure else "PATH", help=f"{what} ({shown})")
    parser.set_defaults(out_default=default)


def output_path(args: argparse.Namespace, **fields: object) -> Path | None:
    """The command's output: ``--out`` as given, else its default under ``act-out/``
    with ``fields`` filled in (file-name safe); None when there is neither. The parent
    folder exists afterwards."""
    path = args.out
    if path is None and args.out_default is not None:
        safe = {k: re.sub(r"[^A-Za-z0-9_.+-]+", "_", str(v)).strip("_") for k, v in fields.items()}
        path = Path(OUTPUT_ROOT, args.out_default.format(**safe))
    if path is not None:
        make_parent(path)
    return path


def add_device(parser: argparse.ArgumentParser) -> None:
    """The one device rule of act's commands: ``--device`` defaults to CUDA when this
    machine has it, else the CPU (see :func:`actcore.device.resolve_device`)."""
    parser.add_argument("--device", default=None, metavar="DEVICE",
                        help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")


def add_normalize(parser: argparse.ArgumentParser) -> None:
    """``--normalize``: every activation as (f(x) - mean) / std under x ~ N(0, 1)."""
    parser.add_argument("--normalize", action="store_true",
                        help="normalise each activation to output mean 0, variance 1 for "
                        "x ~ N(0,1) (Gaussian moments by quadrature)")


def add_operators(parser: argparse.ArgumentParser) -> None:
    """The one list syntax: ``--operators relu,tanh,add`` (comma-separated; may be
    repeated, the lists add up)."""
    parser.add_argument("--operators", type=comma_list, action="extend", default=None,
                        metavar="OP,OP,...",
                        help="operators the placeholders range over, comma-separated "
                        "(default: the core set of 27 unary, 7 binary, 4 n-ary)")


def comma_list(text: str) -> list[str]:
    """An argparse ``type`` for every list option of act: comma-separated names
    (``relu,tanh,add``). With ``action="extend"`` the option may also be repeated."""
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"not a comma-separated list of names: {text!r}")
    return items


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="act", description="act: activation-function research toolkit",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # --version: one per line
    )
    parser.add_argument("--version", action="version", version=_versions(),
                        help="the installed act packages and plugins, with their versions")
    parser.add_argument(
        "--disable",
        metavar="PLUGIN",
        action="append",
        default=[],
        help="disable a plugin by name (repeatable; also ACT_DISABLE_PLUGINS=a,b)",
    )
    talk = parser.add_mutually_exclusive_group()
    talk.add_argument("-q", "--quiet", action="store_const", dest="verbosity", const=QUIET,
                      default=NORMAL, help="results only: no progress bars or notes")
    talk.add_argument("-v", "--verbose", action="store_const", dest="verbosity",
                      const=VERBOSE, help="also details (debug messages)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    plugins.plugin_manager().hook.act_cli(subparsers=subparsers)
    return parser


# The command groups of act's own packages, so a missing one is named, not "invalid choice".
GROUPS = {"hull": "acthull", "fim": "actfim", "bench": "actbench", "search": "actsearch"}


def _check_group_installed(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    words = [a for i, a in enumerate(argv) if i == 0 or argv[i - 1] != "--disable"]
    command = next((a for a in words if not a.startswith("-")), None)
    groups = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if command in GROUPS and command not in groups.choices:
        package = GROUPS[command]
        raise ActError(
            f"'act {command}' comes with the {package} package, which is not installed (or "
            f"is disabled): {install_hint(package)}"
        )


def _versions() -> str:
    import platform

    import torch

    from actcore.versions import plugin_versions

    lines = [f"{name} {version}" for name, version in plugin_versions().items()]
    return "\n".join([*lines, f"(torch {torch.__version__}, python {platform.python_version()})"])


def _disabled_from(argv: Sequence[str]) -> list[str]:
    """``--disable`` must act before the parser is built from the plugins."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--disable", action="append", default=[])
    known, _ = pre.parse_known_args(argv)
    return known.disable


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        disabled = _disabled_from(argv)
        if disabled:
            plugins.disable(*disabled)
        parser = build_parser()
        _check_group_installed(parser, argv)
        try:
            args = parser.parse_args(argv)
        except SystemExit as done:  # --help, or a usage error argparse has printed
            return int(done.code or 0)
        configure(args.verbosity)
        run = getattr(args, "run", None)
        if run is None:
            (args.help_parser if hasattr(args, "help_parser") else parser).print_help()
            return 2 if args.command is None else 0
        return int(run(args) or 0)
    except ActError as err:
        print(f"act: error: {err}", file=sys.stderr)
        return 2
    except ValidationError as err:  # a command's settings model refused an option
        print(f"act: error: {_settings_error(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("act: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def _settings_error(err: ValidationError) -> str:
    """One line per refused setting, named as its command-line option."""
    problems = []
    for error in err.errors():
        field = ".".join(str(part) for part in error["loc"])
        option = "--" + field.replace("_", "-") if field else "settings"
        problems.append(f"{option}: {error['msg']} (got {error.get('input')!r})")
    return "; ".join(problems)


if __name__ == "__main__":
    sys.exit(main())
