"""The benchmark tables actbench ships as package data, registered by name.

Each holds every equivalence class of ``binary(unary(x),unary(x))`` trained with 3 seeds
(medians), built with ``act bench build``: ``act-bench-digits-mlp`` on ``mlp-digits``,
``act-bench-fashion-mlp3`` on ``mlp3-fashion-mnist`` (real images),
``act-bench-fashion-allconv`` on ``allconv-fashion-mnist`` (a convolutional network on the
same images). Its card (``NAME.card.json``) lies beside it. A table whose build has not
finished is registered as unavailable: asked for by name, it is an error that gives the
command building it.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from actbench.tables import NamedTable

DATA = Path(__file__).parent / "data"
SCHEMA = "binary(unary(x),unary(x))"


class Shipped(NamedTuple):
    """One shipped table: its file in :data:`DATA`, the task it is built on."""

    file: str
    task: str
    description: str
    chance: float = 0.1

    def build_command(self) -> str:
        return (f"act bench build --task {self.task} --space '{SCHEMA}' --seeds 3 "
                f"--out {self.file}")


SHIPPED: dict[str, Shipped] = {
    "act-bench-digits-mlp": Shipped(
        "act-bench-digits-mlp.json.gz", "mlp-digits",
        f"{SCHEMA} on mlp-digits, 3 seeds (actbench)",
    ),
    "act-bench-fashion-mlp3": Shipped(
        "act-bench-fashion-mlp3.json.gz", "mlp3-fashion-mnist",
        f"{SCHEMA} on mlp3-fashion-mnist, 3 seeds (actbench)",
    ),
    "act-bench-fashion-allconv": Shipped(
        "act-bench-fashion-allconv.json.gz", "allconv-fashion-mnist",
        f"{SCHEMA} on allconv-fashion-mnist (a CNN), 3 seeds (actbench)",
    ),
}  # fmt: skip


def shipped_tables() -> list[NamedTable]:
    """Every shipped table; one whose file is not installed (its build has not finished)
    is registered as unavailable, naming the command that builds it."""
    return [NamedTable(name, DATA / table.file, table.description, table.chance,
                       unavailable="" if (DATA / table.file).is_file() else
                       "its file is not installed here (its build has not finished); build "
                       f"it with `{table.build_command()}` and give that file in its place")
            for name, table in SHIPPED.items()]  # fmt: skip
