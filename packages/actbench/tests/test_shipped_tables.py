"""Sanity of the shipped tables (package data of actbench): ``act-bench-digits-mlp``,
``act-bench-fashion-mlp3`` and ``act-bench-fashion-allconv``, each every class of
``binary(unary(x),unary(x))``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from actbench.card import card_path, read_card
from actbench.shipped import DATA, SCHEMA, SHIPPED, shipped_tables
from actbench.tables import load_table, named_tables
from actcore import Space, equivalence_classes
from actcore.cli import main

# table: the split sizes its card must record (None: built before cards had them), and
# an accuracy the best functions pass
EXPECTED = {
    "act-bench-digits-mlp": (None, 0.95),
    "act-bench-fashion-mlp3": ({"train": 12000, "val": 6000, "test": 10000}, 0.85),
    "act-bench-fashion-allconv": ({"train": 8000, "val": 6000, "test": 10000}, 0.85),
}


def _shipped(name: str):
    file = DATA / SHIPPED[name].file
    return pytest.param(name, id=name, marks=pytest.mark.skipif(
        not file.is_file(),
        reason=f"{file.name} is not built yet: {SHIPPED[name].build_command()} (see README)"))


@pytest.fixture(scope="module", params=[_shipped(name) for name in EXPECTED])
def shipped(request):
    return request.param, load_table(request.param)


@pytest.fixture(scope="module")
def classes():
    return equivalence_classes(Space(SCHEMA))


def test_every_shipped_table_is_checked_here():
    assert set(SHIPPED) == set(EXPECTED)


def test_a_shipped_table_not_built_yet_is_registered_with_its_build_command(monkeypatch,
                                                                             tmp_path):
    monkeypatch.setattr("actbench.shipped.DATA", tmp_path)  # a checkout where nothing is built
    tables = shipped_tables()
    assert [t.name for t in tables] == list(SHIPPED)
    for table in tables:
        assert table.unavailable.startswith("its file is not installed here")
        assert (f"act bench build --task {SHIPPED[table.name].task} --space '{SCHEMA}' "
                f"--seeds 3 --out {SHIPPED[table.name].file}") in table.unavailable
    (tmp_path / SHIPPED["act-bench-digits-mlp"].file).write_bytes(b"")
    assert not shipped_tables()[0].unavailable


def test_registered_by_name_and_carded(shipped, capsys):
    name, table = shipped
    splits, _ = EXPECTED[name]
    assert name in named_tables()
    card = read_card(card_path(DATA / SHIPPED[name].file))
    assert card.task == SHIPPED[name].task and card.seeds == [0, 1, 2] and card.complete
    assert card.schemas == [SCHEMA] and card.rows == len(table)
    assert card.splits == splits
    assert card.wall_s > 0 and card.cpu_s > 0
    assert main(["bench", "tables"]) == 0
    assert (f"{card.rows} rows of {card.classes} classes, task {card.task}, seeds 3, "
            f"{card.failed} failed") in capsys.readouterr().out


def test_rows_are_the_classes_computed_here(shipped, classes):
    """The table's rows are exactly the classes this machine computes: representatives,
    members (its "Equivalent Activation Functions") and nothing else."""
    _, table = shipped
    assert sorted(table) == sorted(classes.representatives)
    for rep in classes.representatives:
        assert sorted(table[rep].equivalent) == sorted(m for m in classes.members(rep) if m != rep)
    for name in Space(SCHEMA).sample(200, seed=1):  # any member finds its class's row
        assert table.canonical(str(name)) == classes.representative(name)


def test_identical_functions_share_one_row(shipped):
    _, table = shipped
    for a, b in [("sub(exp(x),expm1(x))", "add(erf(x),erfc(x))"),
                 ("mul(tanh(x),cosh(x))", "sub(exp(x),cosh(x))"),
                 ("mul(identity(x),sigmoid(x))", "div(sigmoid(x),reciprocal(x))")]:
        assert table.canonical(a) == table.canonical(b)


def test_failures_at_chance_and_a_spread_among_the_rest(shipped):
    name, table = shipped
    failed = [n for n in table if table.failed(n)]
    assert 0.05 < len(failed) / len(table) < 0.8, "a visible share of failed functions"
    for function in failed:
        row = table[function]
        assert row.val_accuracy <= 0.1 + 1e-3 or not math.isfinite(row.val_loss)
    ok = np.array([table[n].val_accuracy for n in table if not table.failed(n)])
    assert ok.max() > EXPECTED[name][1] and np.percentile(ok, 90) - np.percentile(ok, 10) > 0.1


def test_relu_is_not_the_best(shipped):
    _, table = shipped
    relu = table["max(relu(x),zero(x))"]  # ReLU's class
    best = table[table.best("val_accuracy")]
    assert best.val_accuracy > relu.val_accuracy, "ReLU is the best function of the table"


def test_fisher_features_where_the_spectrum_is_valid(shipped):
    _, table = shipped
    with_cdf = [n for n in table if table[n].fisher_cdf]
    assert len(with_cdf) > len(table) / 2
    lengths = {len(table[n].fisher_cdf) for n in with_cdf}
    assert len(lengths) == 1  # one layout: the same architecture for every function
    for function in with_cdf:
        cdf = np.array(table[function].fisher_cdf)
        assert np.isfinite(cdf).all() and (cdf >= 0).all() and (cdf <= 1 + 1e-9).all()
