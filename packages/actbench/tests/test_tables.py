"""Benchmark tables: the Act-Bench schema, queries, filtering, errors, round trip."""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pytest

from actbench.tables import (
    NamedTable,
    TableRecord,
    load_table,
    named_tables,
    read_table,
    write_table,
)
from actcore import hookimpl, plugins
from actcore.errors import ActError


def row(val: float, equivalent=(), cdf=(0.0, 0.5, 1.0), **extra) -> dict:
    """A row exactly as the public files spell it."""
    data = {
        "Train Accuracy": val + 0.05,
        "Validation Accuracy": val,
        "Train Loss": 0.3,
        "Validation Loss": 0.4,
        "Test Accuracy": val - 0.01,
        "Test Loss": 0.45,
        "Equivalent Activation Functions": list(equivalent),
        "Fisher log eigenvalue CDF": list(cdf),
        "Runtime (s)": 12.5,
    }
    data.update(extra)
    return data


@pytest.fixture
def table_data() -> dict:
    return {
        "relu(x)": row(0.85, ["max(zero(x),identity(x))", "relu(x)"]),
        "add(relu(x),tanh(x))": row(0.88, ["add(tanh(x),relu(x))"]),
        "exp(x)": row(0.1, cdf=()),  # failed: chance accuracy and no spectrum
        "mul(exp(x),exp(x))": row(float("nan")),  # failed: non-finite
        "tanh(x)": row(0.80),
    }


def test_load_json_and_query_by_any_equivalent_name(tmp_path: Path, table_data: dict):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(table_data))
    table = load_table(path)
    assert len(table) == 5
    assert table.names() == list(table_data)
    assert table["add(tanh(x),relu(x))"].val_accuracy == pytest.approx(0.88)
    assert table.canonical("max(zero(x),identity(x))") == "relu(x)"
    assert "add(tanh(x),relu(x))" in table and "sin(x)" not in table
    assert table["relu(x)"].runtime == 12.5
    assert table.best() == "add(relu(x),tanh(x))"
    assert table.best("test_accuracy") == "add(relu(x),tanh(x))"
    assert table.has_fisher


def test_gzip_files_load_like_plain_ones(tmp_path: Path, table_data: dict):
    path = tmp_path / "t.json.gz"
    path.write_bytes(gzip.compress(json.dumps(table_data).encode()))
    assert read_table(path).names() == list(table_data)


def test_failed_functions_are_filtered(table_data: dict, tmp_path: Path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(table_data))
    table = read_table(path)
    assert table.failed("exp(x)") and table.failed("mul(exp(x),exp(x))")
    assert not table.failed("tanh(x)")
    assert sorted(table.successful()) == ["add(relu(x),tanh(x))", "relu(x)", "tanh(x)"]
    assert not table["exp(x)"].has_fisher and table["tanh(x)"].has_fisher
    # the best function ignores non-finite accuracies rather than propagating NaN
    assert math.isfinite(table[table.best()].val_accuracy)


def test_write_then_read_round_trips(tmp_path: Path, table_data: dict):
    records = {n: TableRecord.model_validate(r) for n, r in table_data.items()}
    for name in ("out.json", "out.json.gz"):
        path = write_table(tmp_path / "sub" / name, records)
        back = read_table(path)
        assert back.names() == list(records)
        for n in records:
            a, b = records[n], back[n]
            assert a.equivalent == b.equivalent and a.fisher_cdf == b.fisher_cdf
            assert a.val_accuracy == b.val_accuracy or (
                math.isnan(a.val_accuracy) and math.isnan(b.val_accuracy)
            )
    # the writer leaves no temporary files behind
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["out.json", "out.json.gz"]
    # written in the public schema: the same keys as the published files
    data = json.loads((tmp_path / "sub" / "out.json").read_text())
    assert set(data["relu(x)"]) == set(table_data["relu(x)"])


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "does not exist"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b"{}", "empty"),
        (json.dumps({"relu(x)": {"Train Accuracy": 0.5}}).encode(), "Validation Accuracy"),
        (json.dumps({"relu(x)": row(0.5, **{"Validation Accuracy": "high"})}).encode(),
         "Validation Accuracy"),
        (b"\x1f\x8b\x08broken gzip", "cannot read"),
        (json.dumps({"relu(x)": row(0.5, **{"Validation Accuracy": 78.5})}).encode(),
         "accuracy 78.5 is outside [0, 1]"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path: Path, content, problem):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ActError) as err:
        read_table(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_unknown_function_and_metric_are_clear_errors(tmp_path: Path, table_data: dict):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(table_data))
    table = read_table(path)
    with pytest.raises(ActError, match=r"did you mean 'tanh\(x\)'"):
        table["tanh(y)"]
    with pytest.raises(ActError, match="unknown table metric"):
        table.best("accuracy")


@dataclass
class _Plugin:
    path: Path

    @hookimpl
    def act_tables(self):
        return [NamedTable("tiny-bench", self.path, "a test table"),
                NamedTable("tiny-unbuilt", self.path.with_name("no.json"), "not built yet",
                           unavailable="its build has not finished; run make-tiny")]


def test_named_tables_come_from_the_plugin_hook(tmp_path: Path, table_data: dict):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(table_data))
    plugins.register(_Plugin(path), name="tiny-tables")
    try:
        assert load_table("tiny-bench").names() == list(table_data)
        with pytest.raises(ActError, match="neither an existing file nor a registered"):
            load_table("tiny-bnch")
        with pytest.raises(ActError, match="'tiny-unbuilt': its build has not finished; run "
                           "make-tiny"):
            load_table("tiny-unbuilt")
        assert "tiny-bench" in named_tables() and "tiny-unbuilt" not in named_tables()
    finally:
        plugins.unregister("tiny-tables")


def test_tables_are_listed_with_their_cards_or_why_not(tmp_path: Path, table_data: dict,
                                                       capsys):
    from actcore.cli import main

    path = tmp_path / "t.json"
    path.write_text(json.dumps(table_data))
    plugins.register(_Plugin(path), name="tiny-tables")
    try:
        assert main(["bench", "tables"]) == 0
    finally:
        plugins.unregister("tiny-tables")
    out = capsys.readouterr().out
    assert f"tiny-bench                   a test table\n{'':<30}{path}\n" in out  # no card
    assert "not available: its build has not finished; run make-tiny" in out
