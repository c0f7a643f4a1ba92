"""``act search`` commands end to end, and bad input as clear errors (exit 2)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from actcore import ActError
from actcore.cli import main
from actsearch.embedding import embed
from actsearch.features import Features
from actsearch.regressors import get_regressor
from actsearch.strategies import SearchState, get_strategy


def test_replay_writes_csv_figure_and_summary(smooth_file, cache, tmp_path, capsys,
                                              monkeypatch):
    from actsearch import plot

    drawn, real = [], plot.save

    def keep(fig, path):
        drawn.append({ax.get_title(): ax.get_legend_handles_labels()[1] for ax in fig.axes})
        return real(fig, path)

    monkeypatch.setattr(plot, "save", keep)
    out = tmp_path / "rep"
    args = ["search", "replay", "--table", str(smooth_file), "--regressor", "knr",
            "--features", "union", "--features", "outputs", "--trials", "4", "--budget", "12",
            "--embeddings", "2", "--jobs", "2", "--cache", str(cache), "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "KNR (union)" in printed and "random" in printed
    assert "it measures the search, not the features' signal" in printed  # says what rho is
    rows = list(csv.DictReader((out / "replay.csv").open()))
    assert len(rows) == 3 * 4 * 12  # three curves, four trials, twelve evaluations
    one = [r for r in rows if r["algorithm"] == "KNR (union)" and r["trial"] == "0"]
    accs = [float(r["accuracy"]) for r in one]
    assert np.allclose([float(r["best_so_far"]) for r in one], np.maximum.accumulate(accs),
                       atol=1e-5)
    assert one[0]["function"] == "relu(x)"
    assert {(r["trial"], r["embedding"]) for r in rows} == {("0", "0"), ("1", "1"), ("2", "0"),
                                                            ("3", "1")}  # in turn
    summary = list(csv.DictReader((out / "summary.csv").open()))
    assert [s["algorithm"] for s in summary] == ["KNR (union)", "KNR (outputs)", "random"]
    assert {s["embeddings"] for s in summary} == {"2"}
    assert (out / "replay.png").read_bytes()[:4] == b"\x89PNG"
    (panels,) = drawn  # one panel per feature set, random in each, then the Spearman panel
    assert panels["union features"] == ["KNR (union) (n=4)", "random (n=4)", "ReLU",
                                        "table best"]
    assert panels["outputs features"][:2] == ["KNR (outputs) (n=4)", "random (n=4)"]
    assert panels["surrogate prediction quality"] == ["KNR (union)", "KNR (outputs)"]


def test_embed_plots_three_panels(smooth_file, cache, tmp_path, monkeypatch):
    from actsearch import plot

    drawn = []
    real = plot.save

    def keep(fig, path):
        drawn.append([(ax.get_title(), [c.get_offsets().shape[0] for c in ax.collections],
                       [t.get_text() for t in ax.texts]) for ax in fig.axes if ax.get_title()])
        return real(fig, path)

    monkeypatch.setattr(plot, "save", keep)
    out = tmp_path / "emb.png"
    assert main(["search", "embed", "--table", str(smooth_file), "--cache", str(cache),
                 "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    (panels,) = drawn
    assert [title for title, _, _ in panels] == ["outputs", "fisher", "union"]
    from actbench.tables import load_table
    from actsearch.features import table_features

    table = load_table(smooth_file)
    mask = table_features(table).candidates
    failed = sum(table.failed(n) for n, m in zip(table.names(), mask, strict=True) if m)
    for _, points, texts in panels:
        assert points == [failed, int(mask.sum()) - failed]  # failed grey, then the rest
        assert "relu" in texts  # the baselines are labelled


def test_embedding_colours_are_equal_count_bands_of_the_working_functions(tmp_path,
                                                                           monkeypatch):
    """Most working functions crowd near the best: colours are their deciles, so each
    colour holds a tenth of them; failed ones are grey."""
    from actsearch import plot

    rng = np.random.default_rng(0)
    accuracy = np.concatenate([0.86 + 0.01 * rng.random(900), rng.uniform(0.2, 0.8, 100),
                               np.full(50, 0.1)])  # fmt: skip
    failed = accuracy <= 0.1
    coords = rng.normal(size=(len(accuracy), 2))
    drawn = []
    real = plot.save

    def keep(fig, path):
        drawn.append(fig.axes[0].collections)
        return real(fig, path)

    monkeypatch.setattr(plot, "save", keep)
    plot.plot_embeddings({"outputs": coords}, accuracy, failed, {}, tmp_path / "e.png", "t")
    grey, points = drawn[0]
    assert len(grey.get_offsets()) == 50
    colours = points.to_rgba(points.get_array())
    counts = np.unique(colours, axis=0, return_counts=True)[1]
    assert len(counts) == 10 and counts.min() >= 95 and counts.max() <= 105


def test_regressors_listed(capsys):
    assert main(["search", "regressors"]) == 0
    printed = capsys.readouterr().out
    for name in ("knr", "rfr", "svr", "gpr", "random", "surrogate", "surrogate-batch"):
        assert name in printed


@pytest.fixture
def no_fisher_table(tmp_path):
    row = {"Train Accuracy": 0.5, "Validation Accuracy": 0.5, "Train Loss": 1,
           "Validation Loss": 1, "Test Accuracy": 0.5, "Test Loss": 1,
           "Equivalent Activation Functions": [], "Fisher log eigenvalue CDF": [],
           "Runtime (s)": 1}
    path = tmp_path / "nofisher.json"
    path.write_text(json.dumps({f"{u}(x)": row for u in UNARY}))
    return path


UNARY = ["relu", "tanh", "elu", "selu", "swish", "sigmoid", "softplus", "erf", "abs", "exp"]


@pytest.mark.parametrize(
    ("rows", "accuracy", "message"),
    [
        (UNARY[:1], 0.5, "1 function(s); searching a table needs at least 10"),
        (UNARY, float("nan"), "no row has a finite 'Validation Accuracy'"),
        (UNARY, 78.5, "accuracy 78.5 is outside [0, 1]"),
    ],
)
@pytest.mark.parametrize("command", ["replay", "embed"])
def test_tables_that_cannot_be_searched_are_refused(tmp_path, capsys, rows, accuracy,
                                                    message, command):
    row = {"Train Accuracy": 0.5, "Validation Accuracy": accuracy, "Train Loss": 1,
           "Validation Loss": 1, "Test Accuracy": 0.5, "Test Loss": 1}
    path = tmp_path / "t.json"
    path.write_text(json.dumps({f"{u}(x)": row for u in rows}))
    out = tmp_path / ("o.png" if command == "embed" else "o")  # a figure; a report folder
    code = main(["search", command, "--table", str(path), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--regressor", "knn"], "unknown regressor 'knn'; did you mean 'knr'"),
        (["--strategy", "surrogat"], "unknown strategy 'surrogat'"),
        (["--features", "unoin"], "unknown feature set 'unoin'; did you mean 'union'"),
        (["--features", "fisher"], "needs Fisher features"),
        (["--trials", "0"], "at least 1"),
        (["--jobs", "-1"], "argument --jobs: must be at least 1, got -1"),
        (["--seed", "-1"], "argument --seed: must be at least 0, got -1"),
        (["--budget", "ten"], "not a whole number: 'ten'"),
    ],
)
def test_bad_replay_input_is_a_clear_error(no_fisher_table, tmp_path, capsys, extra, message):
    code = main(["search", "replay", "--table", str(no_fisher_table), "--out",
                 str(tmp_path / "o"), "--cache", str(tmp_path / "c"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_replay_out_must_be_a_folder(no_fisher_table, tmp_path, capsys):
    afile = tmp_path / "report"
    afile.write_text("")
    code = main(["search", "replay", "--table", str(no_fisher_table), "--out", str(afile)])
    err = capsys.readouterr().err
    assert code == 2 and "is a file; the replay report needs a folder" in err


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--fisher-batch", "0", "--fisher-batch: Input should be greater than or equal to 1"),
        ("--epochs", "0", "--epochs: Input should be greater than or equal to 1"),
        ("--seed", "-1", "--seed: Input should be greater than or equal to 0"),
    ],
)
def test_settings_refused_by_a_config_model_are_named_as_options(tmp_path, capsys, option,
                                                                 value, message):
    code = main(["search", "run", "--task", "mlp-digits", "--space", "unary(x)",
                 option, value, "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert message in err and not (tmp_path / "s").exists()


def test_missing_table_and_empty_space(tmp_path, capsys):
    assert main(["search", "replay", "--table", str(tmp_path / "nope.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(Exception, match="nothing to search"):
        Features(["exp(exp(exp(x)))"], np.array([[np.inf, 1.0]]), None).require("outputs")


def test_embedding_is_cached_and_keyed_by_features(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(40)]
    features = Features(names, rng.normal(size=(40, 16)), np.sort(rng.random((40, 8)), 1))
    first = embed(features, "union", seed=0, cache=tmp_path)
    assert first.shape == (40, 2) and np.isfinite(first).all()
    from actsearch import embedding

    def boom(*args, **kwargs):
        raise AssertionError("recomputed a cached embedding")

    monkeypatch.setattr(embedding, "compute_embedding", boom)
    assert np.array_equal(embed(features, "union", seed=0, cache=tmp_path), first)
    changed = Features(names, features.outputs + 1, features.fisher)
    with pytest.raises(AssertionError, match="recomputed"):
        embed(changed, "union", seed=0, cache=tmp_path)
    (tmp_path / "a-file").touch()  # a cache that cannot be written: refused before the work
    with pytest.raises(ActError, match="cannot create the folder"):
        embed(changed, "union", seed=0, cache=tmp_path / "a-file" / "cache")


def test_batch_never_suggests_two_members_of_one_class():
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(30, 2))
    classes = np.arange(30) // 3  # ten classes of three
    state = SearchState(coords, np.ones(30, bool), get_regressor("knr"), rng,
                        observed={0: 0.5, 4: 0.9, 8: 0.2}, pending={10}, classes=classes)
    rows = get_strategy("surrogate-batch").suggest(state, 5).rows
    picked = classes[rows]
    assert len(rows) == 5 and len(set(picked)) == 5
    assert not set(picked) & {0, 1, 2, 3}  # classes evaluated (0,1,2) or pending (3)
    random_rows = get_strategy("random").suggest(state, 9).rows  # only six classes free
    assert len(set(classes[random_rows])) == 6 and not set(classes[random_rows]) & {0, 1, 2, 3}


def test_budget_beyond_the_table_stops_when_functions_run_out(no_fisher_table, tmp_path):
    out = tmp_path / "small"
    assert main(["search", "replay", "--table", str(no_fisher_table), "--budget", "15",
                 "--trials", "2", "--jobs", "1", "--out", str(out),
                 "--cache", str(tmp_path / "c")]) == 0
    rows = list(csv.DictReader((out / "replay.csv").open()))
    assert len(rows) == 2 * 2 * 10  # two curves (KNR, random), two trials, ten functions
