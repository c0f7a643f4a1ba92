from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("embeddings")


@pytest.fixture(scope="session")
def smooth(cache):
    """The synthetic table (accuracy a smooth hill over the union embedding)."""
    from synthetic import smooth_table

    return smooth_table(cache=cache)


@pytest.fixture(scope="session")
def smooth_file(smooth, tmp_path_factory) -> Path:
    from actbench.tables import write_table

    return write_table(tmp_path_factory.mktemp("tables") / "smooth.json.gz", smooth.records)
