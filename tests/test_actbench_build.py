"""A table built by ``act bench build`` feeds actsearch: features, and replay by name."""

from __future__ import annotations

import numpy as np
import pytest

from actbench.build import BuildConfig, build
from actbench.shipped import DATA, SHIPPED
from actbench.tables import read_table
from actcore.cli import main


def test_built_table_gives_search_features(tmp_path):
    config = BuildConfig(task="mlp-digits", schemas=["binary(unary(x),unary(x))"],
                         operators=["zero", "relu", "tanh", "add", "div"], seeds=1,
                         overrides={"epochs": 1}, fisher_batch=32, device="cpu")  # fmt: skip
    summary = build(config, tmp_path / "tiny.json.gz", workers=0, progress=False)
    from actsearch.features import table_features

    table = read_table(summary.out)
    features = table_features(table)
    assert features.names == list(table) and features.fisher is not None
    assert features.outputs.shape[0] == features.fisher.shape[0] == len(table)
    valid = features.fisher_ok
    assert valid.any() and not valid.all()  # dead functions have no spectrum
    for name, ok in zip(features.names, valid, strict=True):
        assert ok == table[name].has_fisher
    assert np.isfinite(features.fisher[valid]).all()


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.skipif(not (DATA / table.file).is_file(),
                                                reason=f"{table.file} is not built yet"))
    for name, table in SHIPPED.items()])
def test_replay_on_the_shipped_table_by_name(name, tmp_path, capsys):
    out = tmp_path / "replay"
    argv = ["search", "replay", "--table", name, "--trials", "2",
            "--budget", "12", "--jobs", "1", "--out", str(out), "--cache", str(tmp_path)]
    assert main(argv) == 0
    assert (out / "replay.png").is_file() and (out / "summary.csv").is_file()
