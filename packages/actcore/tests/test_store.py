import pytest

from actcore.errors import ActError
from actcore.store import open_store

TABLES = ["CREATE TABLE IF NOT EXISTS done (name TEXT PRIMARY KEY)"]


def test_reopening_with_the_same_settings_keeps_the_work(tmp_path):
    path = tmp_path / "work.sqlite"
    db = open_store(path, {"seed": 0, "task": "t"}, TABLES, what="work file")
    with db:
        db.execute("INSERT INTO done VALUES ('relu(x)')")
    db.close()
    db = open_store(path, {"task": "t", "seed": 0}, TABLES, what="work file")
    assert db.execute("SELECT name FROM done").fetchall() == [("relu(x)",)]


def test_other_settings_name_what_differs(tmp_path):
    path = tmp_path / "work.sqlite"
    open_store(path, {"seed": 0, "task": "t"}, TABLES, what="work file").close()
    with pytest.raises(ActError, match=r"work file .* other settings \(seed: 0 -> 1\)"):
        open_store(path, {"seed": 1, "task": "t"}, TABLES, what="work file")


def test_a_file_that_is_not_sqlite_is_a_clear_error(tmp_path):
    path = tmp_path / "work.sqlite"
    path.write_text("not a database" * 100)
    with pytest.raises(ActError, match="not a usable SQLite file"):
        open_store(path, {}, TABLES, what="work file")
