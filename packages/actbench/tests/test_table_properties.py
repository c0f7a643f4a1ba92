"""Property-based guard: any JSON, near-valid rows or raw bytes given as a table end in a
Table or an ActError naming the problem, never anything else."""

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actbench.tables import read_table, table_from_json
from actcore import ActError

KEYS = ["Train Accuracy", "Validation Accuracy", "Train Loss", "Validation Loss",
        "Test Accuracy", "Test Loss", "Equivalent Activation Functions",
        "Fisher log eigenvalue CDF", "Runtime (s)"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8))
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
ROW = st.dictionaries(
    st.sampled_from(KEYS),
    st.one_of(st.floats(-2, 200), st.just(float('nan')), SCALARS, st.lists(st.floats(), max_size=3),
              st.lists(st.text(max_size=10), max_size=3)),
)
TABLES = st.dictionaries(st.text(max_size=20), ROW, max_size=4)


def _table_or_act_error(data) -> None:
    try:
        table = table_from_json(data, "generated")
    except ActError as err:
        assert "generated" in str(err)
        return
    for name in table:
        assert table.canonical(name) == name
        row = table[name]
        for accuracy in (row.train_accuracy, row.val_accuracy, row.test_accuracy):
            assert math.isnan(accuracy) or 0 <= accuracy <= 1  # fractions, or NaN


@settings(max_examples=300, deadline=None)
@given(st.one_of(JSON, TABLES))
def test_any_json_is_a_table_or_an_act_error(data):
    _table_or_act_error(data)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=64), TABLES.map(lambda t: json.dumps(t).encode())))
def test_any_file_is_a_table_or_an_act_error(tmp_path, content):
    path = tmp_path / "t.json"
    path.write_bytes(content)
    try:
        read_table(path)
    except ActError as err:
        assert str(path) in str(err)
