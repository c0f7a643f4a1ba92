"""The packages' import graph: arrows point down the layers, no files import each other
(``python scripts/import_graph.py`` prints the same check)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "import_graph.py"


def _graph():
    spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_arrows_point_down_and_files_never_import_each_other():
    assert _graph().problems() == []


def test_the_check_sees_an_arrow_up_and_a_loop(tmp_path, monkeypatch):
    """The check can fail: a lower package importing a higher one, and two files
    importing each other, are both reported."""
    graph = _graph()
    for package, files in {"actcore": {"a.py": "import actbench.train\n",
                                       "b.py": "from actcore import c\n",
                                       "c.py": "def f():\n    from actcore.b import x\n"},
                           "acthull": {}, "actfim": {}, "actbench": {"train.py": ""},
                           "actsearch": {}}.items():  # fmt: skip
        folder = tmp_path / "packages" / package / "src" / package
        folder.mkdir(parents=True)
        (folder / "__init__.py").write_text("")
        for name, text in files.items():
            (folder / name).write_text(text)
    monkeypatch.setattr(graph, "ROOT", tmp_path)
    assert graph.problems() == [
        "actcore.a imports actbench.train: actbench is not below actcore",
        "files importing each other: actcore.b -> actcore.c",
    ]
