"""Sanity of the shipped ``act-bench-digits-mlp`` table (package data of actbench)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from actbench.card import card_path, read_card
from actbench.shipped import DATA, SHIPPED
from actbench.tables import load_table, named_tables
from actcore import Space, equivalence_classes

NAME = "act-bench-digits-mlp"
FILE = DATA / SHIPPED[NAME][0]

pytestmark = pytest.mark.skipif(
    not FILE.is_file(),
    reason=f"{FILE.name} is not built yet: act bench build --task mlp-digits "
    f"--space 'binary(unary(x),unary(x))' --seeds 3 --out {FILE.name} (see README)",
)


@pytest.fixture(scope="module")
def table():
    return load_table(NAME)


def test_registered_by_name_and_carded(table):
    assert NAME in named_tables()
    card = read_card(card_path(FILE))
    assert card.task == "mlp-digits" and card.seeds == [0, 1, 2] and card.complete
    assert card.schemas == ["binary(unary(x),unary(x))"] and card.rows == len(table)


def test_rows_are_the_classes_computed_here(table):
    """The table's rows are exactly the classes this machine computes: representatives,
    members (its "Equivalent Activation Functions") and nothing else."""
    space = Space("binary(unary(x),unary(x))")
    classes = equivalence_classes(space)
    assert sorted(table) == sorted(classes.representatives)
    for rep in classes.representatives:
        assert sorted(table[rep].equivalent) == sorted(m for m in classes.members(rep) if m != rep)
    for name in space.sample(200, seed=1):  # any member finds its class's row
        assert table.canonical(str(name)) == classes.representative(name)


def test_identical_functions_share_one_row(table):
    for a, b in [("sub(exp(x),expm1(x))", "add(erf(x),erfc(x))"),
                 ("mul(tanh(x),cosh(x))", "sub(exp(x),cosh(x))"),
                 ("mul(identity(x),sigmoid(x))", "div(sigmoid(x),reciprocal(x))")]:
        assert table.canonical(a) == table.canonical(b)


def test_failures_at_chance_and_a_spread_among_the_rest(table):
    failed = [n for n in table if table.failed(n)]
    assert 0.05 < len(failed) / len(table) < 0.8, "a visible share of failed functions"
    for name in failed:
        row = table[name]
        assert row.val_accuracy <= 0.1 + 1e-3 or not math.isfinite(row.val_loss)
    ok = np.array([table[n].val_accuracy for n in table if not table.failed(n)])
    assert ok.max() > 0.9 and np.percentile(ok, 90) - np.percentile(ok, 10) > 0.1


def test_relu_is_not_the_best(table):
    relu = table["max(relu(x),zero(x))"]  # ReLU's class
    best = table[table.best("val_accuracy")]
    assert best.val_accuracy > relu.val_accuracy, "ReLU is the best function of the table"


def test_fisher_features_where_the_spectrum_is_valid(table):
    with_cdf = [n for n in table if table[n].fisher_cdf]
    assert len(with_cdf) > len(table) / 2
    lengths = {len(table[n].fisher_cdf) for n in with_cdf}
    assert len(lengths) == 1  # one layout: the same architecture for every function
    for name in with_cdf:
        cdf = np.array(table[name].fisher_cdf)
        assert np.isfinite(cdf).all() and (cdf >= 0).all() and (cdf <= 1 + 1e-9).all()
