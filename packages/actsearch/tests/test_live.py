"""Live search: resume after a crash, equivalence classes, the Dask path, bad input."""

from __future__ import annotations

import pytest

from actcore import equivalence_classes
from actcore.cli import main
from actcore.errors import ActError
from actsearch import live
from actsearch.live import BASELINES, SearchConfig, run_search

OPS = ["relu", "tanh", "sigmoid", "elu", "identity", "abs", "swish", "softplus", "negative"]


def config(**changes) -> SearchConfig:
    base = dict(task="mlp-digits", space=["max(unary(x),unary(x))"], operators=OPS,
                budget=12, features="outputs", epochs=1)
    return SearchConfig(**{**base, **changes})


@pytest.fixture
def counted(monkeypatch):
    """Count trainings; fake a crash (KeyboardInterrupt) at a chosen call."""
    calls: list[str] = []
    real = live.train_one
    crash_at = {"n": None}

    def train_one(task, function, seed, overrides):
        if crash_at["n"] is not None and len(calls) == crash_at["n"]:
            raise KeyboardInterrupt
        calls.append(function)
        return real(task, function, seed, overrides)

    monkeypatch.setattr(live, "train_one", train_one)
    return calls, crash_at


def test_crash_then_resume_loses_and_repeats_nothing(tmp_path, counted):
    calls, crash_at = counted
    crash_at["n"] = 7
    with pytest.raises(KeyboardInterrupt):
        run_search(config(), tmp_path, workers=0, progress=False)
    assert len(calls) == 7
    crash_at["n"] = None
    evaluations = run_search(config(), tmp_path, workers=0, progress=False)
    names = [e.function for e in evaluations]
    assert len(names) == 12 and len(calls) == 12  # 7 before, 5 after: none twice
    assert names[:7] == calls[:7]
    assert names[:8] == list(BASELINES)  # the search starts from SPEC's eight baselines
    # no two evaluated functions are one equivalence class
    classes = equivalence_classes(names)
    assert len(classes) == 12
    # growing the budget continues the same study
    more = run_search(config(budget=14), tmp_path, workers=0, progress=False)
    assert [e.function for e in more][:12] == names and len(calls) == 14


def test_study_with_other_settings_is_refused(tmp_path, counted):
    run_search(config(budget=1), tmp_path, workers=0, progress=False)
    with pytest.raises(ActError, match=r"other settings.*regressor: 'knr' -> 'rfr'"):
        run_search(config(budget=1, regressor="rfr"), tmp_path, workers=0, progress=False)


def test_a_second_search_on_the_same_study_is_refused(tmp_path, counted):
    from actcore.lock import exclusive

    calls, _ = counted
    running = exclusive(tmp_path / "study.sqlite", "the study")  # a search running elsewhere
    with running, pytest.raises(ActError, match=r"the study .* is in use by pid"):
        run_search(config(budget=2), tmp_path, workers=0, progress=False)
    assert calls == []


def test_candidates_are_class_representatives():
    names = live.unique_functions(config())
    assert len(equivalence_classes(names)) == len(names)  # one per class
    assert "relu(x)" in names and "max(relu(x),relu(x))" not in names
    assert set(BASELINES) <= set(names)


def test_dask_local_cluster_path(tmp_path):
    evaluations = run_search(config(budget=3), tmp_path, workers=2, scheduler="local",
                             progress=False)
    assert [e.function for e in evaluations] and len(evaluations) == 3
    assert all(e.status == "ok" and 0 <= e.val_accuracy <= 1 for e in evaluations)


def test_command_writes_the_report(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["search", "run", "--task", "mlp-digits", "--space", "max(unary(x),unary(x))",
                 "--operators", ",".join(OPS), "--budget", "10", "--workers", "2",
                 "--epochs", "1", "--out", str(out)]) == 0
    for name in ("leaderboard.csv", "best_so_far.png", "top_functions.png", "study.sqlite",
                 "fisher/chunk-00000.sqlite"):
        assert (out / name).is_file(), name
    lines = (out / "leaderboard.csv").read_text().splitlines()
    assert len(lines) == 11 and lines[0].startswith("rank,function,val_accuracy")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--regressor", "knnr"], "unknown regressor 'knnr'"),
        (["--strategy", "greedy"], "unknown strategy 'greedy'"),
        (["--features", "fishr"], "unknown feature set 'fishr'"),
        (["--task", "mlp-digit"], "unknown task 'mlp-digit'"),
        (["--operators", "relu"], "has no operator to range over"),
        (["--space", "max(unary(x)"], "unbalanced parentheses"),
        (["--budget", "0"], "at least 1"),
    ],
)
def test_bad_run_input_is_a_clear_error(tmp_path, capsys, extra, message):
    args = ["search", "run", "--task", "mlp-digits", "--space", "binary(unary(x),unary(x))",
            "--out", str(tmp_path / "o"), "--workers", "0"]
    code = main(args + extra)
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err


def test_parallel_workers_are_all_busy_and_never_share_a_class(tmp_path, monkeypatch):
    """Two thread workers, a fake 50 ms training: record what runs at the same time."""
    import contextlib
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    import actbench.executors

    running: set[str] = set()
    overlaps: list[set[str]] = []
    lock = threading.Lock()

    def fake_train(task, function, seed, overrides):
        with lock:
            running.add(function)
            overlaps.append(set(running))
        time.sleep(0.05)
        with lock:
            running.discard(function)
        acc = 0.1 + (hash(function) % 80) / 100
        return {"val_accuracy": acc, "test_accuracy": acc, "status": "ok", "runtime_s": 0.05}

    @contextlib.contextmanager
    def threads(workers, scheduler):
        with ThreadPoolExecutor(workers) as pool:
            yield pool

    monkeypatch.setattr(live, "train_one", fake_train)
    monkeypatch.setattr(actbench.executors, "make_executor", threads)
    for strategy in ("surrogate", "surrogate-batch"):
        overlaps.clear()
        out = tmp_path / strategy
        evaluations = run_search(config(budget=16, strategy=strategy), out, workers=2,
                                 progress=False)
        assert len({e.function for e in evaluations}) == 16
        # both workers were busy with suggestions, not only with the eight baselines
        assert any(len(s) == 2 and not s & set(BASELINES) for s in overlaps)
        for together in overlaps:
            if len(together) == 2:
                assert len(equivalence_classes(sorted(together))) == 2
