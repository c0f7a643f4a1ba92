"""The benchmark tables actbench ships as package data, registered by name.

Each holds every equivalence class of ``binary(unary(x),unary(x))`` trained with 3 seeds
(medians), built with ``act bench build``: ``act-bench-digits-mlp`` on ``mlp-digits``,
``act-bench-fashion-mlp3`` on ``mlp3-fashion-mnist`` (real images),
``act-bench-fashion-allconv`` on ``allconv-fashion-mnist`` (a convolutional network on the
same images). Its card
(``NAME.card.json``) lies beside it. A table is registered only when its file is
installed, so a checkout whose build has not finished lists none.
"""

from __future__ import annotations

from pathlib import Path

from actbench.tables import NamedTable

DATA = Path(__file__).parent / "data"

SHIPPED: dict[str, tuple[str, str, float]] = {
    "act-bench-digits-mlp": (
        "act-bench-digits-mlp.json.gz",
        "binary(unary(x),unary(x)) on mlp-digits, 3 seeds (actbench)",
        0.1,
    ),
    "act-bench-fashion-mlp3": (
        "act-bench-fashion-mlp3.json.gz",
        "binary(unary(x),unary(x)) on mlp3-fashion-mnist, 3 seeds (actbench)",
        0.1,
    ),
    "act-bench-fashion-allconv": (
        "act-bench-fashion-allconv.json.gz",
        "binary(unary(x),unary(x)) on allconv-fashion-mnist (a CNN), 3 seeds (actbench)",
        0.1,
    ),
}


def shipped_tables() -> list[NamedTable]:
    """The shipped tables whose files are present."""
    tables = []
    for name, (file, description, chance) in SHIPPED.items():
        path = DATA / file
        if path.is_file():
            tables.append(NamedTable(name, path, description, chance))
    return tables
