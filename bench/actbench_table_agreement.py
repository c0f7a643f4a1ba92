"""How far two builds of one benchmark table agree: a rebuild against the shipped table.

    .venv-dev/bin/python bench/actbench_table_agreement.py REBUILT [--against NAME_OR_PATH]
        [--val-images N]

Prints, over the classes in both tables: the Spearman rank correlation of the validation
accuracies (all rows, and rows that trained in both), the share of rows whose validation
accuracies lie within one validation image of each other, the share whose failure
verdicts agree, and the two tables' best classes. ``--against`` defaults to the shipped
table of the rebuilt table's name; the validation size comes from the card's splits
(``--val-images`` for cards without them: 360 for the digits table).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from actbench.card import card_path, read_card
from actbench.shipped import shipped_tables
from actbench.tables import read_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rebuilt", type=Path)
    parser.add_argument("--against", help="a shipped table's name or a table file")
    parser.add_argument("--val-images", type=int)
    args = parser.parse_args()
    rebuilt = read_table(args.rebuilt)
    shipped = {t.name: t.path for t in shipped_tables()}
    name = args.against or args.rebuilt.name.removesuffix(".json.gz")
    other_path = Path(shipped.get(name, name))
    other = read_table(other_path)
    val_images = args.val_images or (read_card(card_path(other_path)).splits or {}).get("val")
    if not val_images:
        parser.error("the card has no splits: give --val-images")
    common = [n for n in other.names() if n in rebuilt]
    a = np.array([rebuilt[n].val_accuracy for n in common])
    b = np.array([other[n].val_accuracy for n in common])
    failed_a = np.array([rebuilt.failed(n) for n in common])
    failed_b = np.array([other.failed(n) for n in common])
    both = ~failed_a & ~failed_b
    close = np.abs(a - b) <= 1 / val_images + 1e-9
    print(f"{len(common):,} classes in both ({len(rebuilt):,} rebuilt, {len(other):,} "
          f"in {other_path.name}); one validation image = {100 / val_images:.2f} points")
    print(f"Spearman of validation accuracy: {spearmanr(a, b).statistic:.3f} (all rows), "
          f"{spearmanr(a[both], b[both]).statistic:.3f} ({both.sum():,} rows trained in both)")
    print(f"within one validation image: {close.mean():.1%} of all rows, "
          f"{close[both].mean():.1%} of rows trained in both")
    print(f"failure verdicts agree: {(failed_a == failed_b).mean():.1%} "
          f"({failed_a.sum():,} failed rebuilt, {failed_b.sum():,} before)")
    for label, table in (("rebuilt", rebuilt), ("shipped", other)):
        best = table.best()
        print(f"best {label}: {best} {100 * table[best].val_accuracy:.2f}% validation")


if __name__ == "__main__":
    main()
