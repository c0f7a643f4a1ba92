"""The import graph of act's packages, checked: arrows between packages point down the
layers only, and no two files of a package import each other, directly or round a loop.

    python scripts/import_graph.py      # prints each problem; exit status 1 if any

Every import counts, at the top of a file, inside a function or under TYPE_CHECKING: a
lazy import is still an arrow a reader has to follow. ``from pkg import name`` counts as
an import of ``pkg.name`` when that is a module of the package; a package's
``__init__`` (which re-exports its API) is left out of the cycle check.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: a package may import those on lower layers only (acthull and actfim: neither the other)
LAYERS = {"actcore": 0, "acthull": 1, "actfim": 1, "actbench": 2, "actsearch": 3}


def modules() -> dict[str, Path]:
    """Every module of every package: dotted name -> file."""
    found = {}
    for package in LAYERS:
        src = ROOT / "packages" / package / "src"
        for path in sorted((src / package).rglob("*.py")):
            name = ".".join(path.relative_to(src).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imports(path: Path, name: str, known: dict[str, Path]) -> set[str]:
    """The act modules ``path`` (module ``name``) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                targets.add(full if full in known else base)
    return {t for t in targets if t.split(".")[0] in LAYERS}


def problems() -> list[str]:
    """Every arrow up or sideways between packages, and every loop between files."""
    known = modules()
    graph = {name: imports(path, name, known) for name, path in known.items()}
    found = []
    for name, targets in sorted(graph.items()):
        here = name.split(".")[0]
        for target in sorted(targets):
            there = target.split(".")[0]
            if there != here and LAYERS[there] >= LAYERS[here]:
                found.append(f"{name} imports {target}: {there} is not below {here}")
    files = {n: {t for t in ts if t in known and t != n and known[t].name != "__init__.py"
                 and t.split(".")[0] == n.split(".")[0]}
             for n, ts in graph.items() if known[n].name != "__init__.py"}  # fmt: skip
    for loop in _loops(files):
        found.append("files importing each other: " + " -> ".join(loop))
    return found


def _loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    loops: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return loops


if __name__ == "__main__":
    sys.setrecursionlimit(10_000)
    found = problems()
    print("\n".join(found) or "import graph: every arrow points down, no loops")
    sys.exit(1 if found else 0)
