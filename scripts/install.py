"""Install act packages from this repository into the running Python, each with the act
packages it needs (``./dev install actfim``; ``python scripts/install.py actfim`` works too).

A plain ``pip install packages/actfim`` cannot work on its own: pip looks for its
dependency ``actfn-core`` on the package index, where act is not published yet. This reads
each package's pyproject, follows the ``actfn-*`` dependencies to their folders and gives
pip every path at once. Arguments after ``--`` go to pip (``-- -e`` for editable installs).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def local_packages() -> dict[str, tuple[Path, list[str]]]:
    """Distribution name -> (folder, its dependencies' names) for packages/ and examples/."""
    found = {}
    for pyproject in sorted([*ROOT.glob("packages/*/pyproject.toml"),
                             *ROOT.glob("examples/*/pyproject.toml")]):
        project = tomllib.loads(pyproject.read_text())["project"]
        requires = [re.split(r"[\s<>=!~;\[]", dep, maxsplit=1)[0]
                    for dep in project.get("dependencies", [])]
        found[project["name"]] = (pyproject.parent, requires)
    return found


def resolve(requested: list[str], known: dict[str, tuple[Path, list[str]]]) -> list[str]:
    """The folders to install for ``requested`` (import names such as ``actfim``,
    distribution names such as ``actfn-fim``, or folders), dependencies first; extras such as
    ``actbench[distributed]`` are kept."""
    by_alias = {}
    for dist, (folder, _) in known.items():
        by_alias[dist] = by_alias[folder.name] = dist
    order: list[str] = []

    def visit(dist: str) -> None:
        if dist in order:
            return
        for dep in known[dist][1]:
            if dep in known:
                visit(dep)
        order.append(dist)

    extras = {}
    for word in requested:
        name, _, extra = word.partition("[")
        name = Path(name).name if "/" in name else name
        if name not in by_alias:
            choices = ", ".join(sorted(f.name for f, _ in known.values()))
            sys.exit(f"install: no act package {name!r} in this repository (choose from {choices})")
        dist = by_alias[name]
        extras[dist] = f"[{extra}" if extra else ""
        visit(dist)
    return [f"{known[dist][0]}{extras.get(dist, '')}" for dist in order]


def main(argv: list[str]) -> int:
    pip_args = argv[argv.index("--") + 1:] if "--" in argv else []
    requested = argv[:argv.index("--")] if "--" in argv else argv
    if not requested:
        sys.exit("usage: ./dev install PACKAGE... [-- PIP-ARGS] (e.g. ./dev install actfim)")
    paths = resolve(requested, local_packages())
    editable = "-e" in pip_args or "--editable" in pip_args
    pip_args = [a for a in pip_args if a not in ("-e", "--editable")]
    targets = [arg for path in paths for arg in (["-e", path] if editable else [path])]
    print(f"install: {' '.join(Path(p).name for p in paths)} into {sys.prefix}", file=sys.stderr)
    return subprocess.call([sys.executable, "-m", "pip", "install", *pip_args, *targets])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
