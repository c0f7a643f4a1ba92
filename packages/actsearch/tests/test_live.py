"""Live search: resume after a crash, equivalence classes, the Dask path, bad input."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import torch

from actbench.results import Result
from actcore import equivalence_classes
from actcore.cli import main
from actcore.errors import ActError
from actsearch import candidates, live
from actsearch.features import BASELINES, output_features
from actsearch.live import SearchConfig, run_search

OPS = ["relu", "tanh", "sigmoid", "elu", "identity", "abs", "swish", "softplus", "negative"]


def config(**changes) -> SearchConfig:
    base = dict(task="mlp-digits", space=["max(unary(x),unary(x))"], operators=OPS,
                budget=12, features="outputs", epochs=1, device="cpu")
    return SearchConfig(**{**base, **changes})


def one_by_one(train):
    """A per-function fake training as the search's job function (a list of functions)."""
    def job(task, functions, seed, overrides):
        return [train(task, function, seed, overrides) for function in functions]

    return job


@pytest.fixture
def counted(monkeypatch):
    """Count trainings; fake a crash (KeyboardInterrupt) at a chosen call."""
    calls: list[str] = []
    real = live.train_functions
    crash_at = {"n": None}

    def train_functions(task, functions, seed, overrides):
        if crash_at["n"] is not None and len(calls) == crash_at["n"]:
            raise KeyboardInterrupt
        calls.extend(functions)
        return real(task, functions, seed, overrides)

    monkeypatch.setattr(live, "train_functions", train_functions)
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


def test_recipe_overrides_reach_every_training_and_tell_studies_apart(tmp_path, monkeypatch):
    seen = []

    def train_functions(task, functions, seed, overrides):
        seen.append(dict(overrides))
        return real(task, functions, seed, overrides)

    real = live.train_functions
    monkeypatch.setattr(live, "train_functions", train_functions)
    wanted = {"precision": "bfloat16", "lr": 0.01}
    run_search(config(budget=2, overrides=wanted), tmp_path, workers=0, progress=False)
    assert seen and all(o == {**wanted, "epochs": 1, "device": "cpu"} for o in seen)
    with pytest.raises(ActError, match=r"other settings.*overrides"):
        run_search(config(budget=2), tmp_path, workers=0, progress=False)
    assert "overrides" not in config().settings()  # studies from before the option resume


def test_the_device_reaches_every_training_and_spectrum_and_a_study_may_change_device(
    tmp_path, monkeypatch
):
    """Where a search runs is not what it computes: a study begun on one device goes on
    on another."""
    import actfim.batch

    seen, spectra = [], actfim.batch.spectra_for_activations

    def train_functions(task, functions, seed, overrides):
        seen.append(overrides["device"])
        return real(task, functions, seed, overrides)

    def spectra_for_activations(*args, **kwargs):
        seen.append(kwargs["device"])
        return spectra(*args, **kwargs)

    real = live.train_functions
    monkeypatch.setattr(live, "train_functions", train_functions)
    monkeypatch.setattr(actfim.batch, "spectra_for_activations", spectra_for_activations)
    run_search(config(budget=2, device="cpu"), tmp_path, workers=0, progress=False)
    assert seen == ["cpu", "cpu"]
    assert "device" not in config(device="cpu").settings()
    assert len(run_search(config(budget=3, device=None), tmp_path, workers=0,
                          progress=False)) == 3
    assert seen[-1] is None  # this machine's default: CUDA where it has one
    seen.clear()
    candidates.fisher_features(config(device="cpu"), ["relu(x)", "tanh(x)"])
    assert seen == [torch.device("cpu")]


def test_a_bad_recipe_override_is_refused_when_the_search_is_defined():
    with pytest.raises(ActError, match="bad training setting for task 'mlp-digits': lr"):
        config(overrides={"lr": -1})
    with pytest.raises(ActError, match="precision"):
        config(overrides={"precision": "float8"})


def test_a_second_search_on_the_same_study_is_refused(tmp_path, counted):
    from actcore.lock import exclusive

    calls, _ = counted
    running = exclusive(tmp_path / "study.sqlite", "the study")  # a search running elsewhere
    with running, pytest.raises(ActError, match=r"the study .* is in use by pid"):
        run_search(config(budget=2), tmp_path, workers=0, progress=False)
    assert calls == []


def test_candidates_are_class_representatives_with_their_outputs(tmp_path):
    names, rows = candidates.candidate_functions(config(), tmp_path)
    assert len(equivalence_classes(names)) == len(names)  # one per class
    assert "relu(x)" in names and "max(relu(x),relu(x))" not in names
    assert set(BASELINES) <= set(names)  # under their own names
    assert rows.dtype == np.float32 and rows.shape == (len(names), 1000)
    np.testing.assert_array_equal(rows, output_features(names))  # one evaluation, reused
    again = candidates.candidate_functions(config(), tmp_path)  # read back, not redone
    assert again[0] == names and np.array_equal(again[1], rows)


def test_dask_local_cluster_path(tmp_path):
    """Fisher chunks and trainings both go to the Dask workers (the same code path)."""
    evaluations = run_search(config(budget=3, features="union"), tmp_path, workers=2,
                             scheduler="local", progress=False)
    assert [e.function for e in evaluations] and len(evaluations) == 3
    assert list((tmp_path / "fisher").glob("chunk-*.npy"))
    assert all(e.status == "ok" and 0 <= e.val_accuracy <= 1 for e in evaluations)


def test_command_writes_the_report(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["search", "run", "--task", "mlp-digits", "--space", "max(unary(x),unary(x))",
                 "--operators", ",".join(OPS), "--budget", "10", "--workers", "2",
                 "--epochs", "1", "--fisher-features", "quantiles", "--out", str(out)]) == 0
    for name in ("leaderboard.csv", "best_so_far.png", "top_functions.png", "study.sqlite"):
        assert (out / name).is_file(), name
    chunks = list((out / "fisher").glob("chunk-00000-*.npy"))
    assert len(chunks) == 1 and np.load(chunks[0]).shape[1] == 7 * 101  # the MLP's 7 layers
    lines = (out / "leaderboard.csv").read_text().splitlines()
    assert len(lines) == 11 and lines[0].startswith("rank,function,readable,val_accuracy")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--regressor", "knnr"], "unknown regressor 'knnr'"),
        (["--strategy", "greedy"], "unknown strategy 'greedy'"),
        (["--features", "fishr"], "unknown feature set 'fishr'"),
        (["--fisher-features", "quantile"], "unknown Fisher feature 'quantile'"),
        (["--task", "mlp-digit"], "unknown task 'mlp-digit'"),
        (["--operators", "relu"], "has no operator to range over"),
        (["--space", "max(unary(x)"], "unbalanced parentheses"),
        (["--budget", "0"], "at least 1"),
        (["--device", "gpu"], "unknown device 'gpu'"),
        *([] if torch.cuda.is_available() else
          [(["--device", "cuda"], "'cuda', but no CUDA device is available")]),
    ],
)
def test_bad_run_input_is_a_clear_error(tmp_path, capsys, extra, message):
    args = ["search", "run", "--task", "mlp-digits", "--space", "binary(unary(x),unary(x))",
            "--out", str(tmp_path / "o"), "--workers", "0"]
    code = main(args + extra)
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err


def _slow_trainings(monkeypatch, threads, seconds=0.05):
    """Trainings that take ``seconds`` each on a pool of ``threads`` threads (None: the
    workers the search asks for; a cluster has its own); returns the sets of functions
    that were training together, one per training's start."""
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
        time.sleep(seconds)
        with lock:
            running.discard(function)
        acc = 0.1 + (zlib.crc32(function.encode()) % 80) / 100  # the same in every process
        return Result(task=task, activation=function, seed=seed, status="ok",
                      train_accuracy=acc, val_accuracy=acc, test_accuracy=acc, train_loss=0.1,
                      val_loss=0.1, test_loss=0.1, runtime_s=0.05, epochs=1)

    @contextlib.contextmanager
    def pool(workers, scheduler, device):
        with ThreadPoolExecutor(threads or workers) as executor:
            yield executor

    monkeypatch.setattr(live, "train_functions", one_by_one(fake_train))
    monkeypatch.setattr(actbench.executors, "make_executor", pool)
    return overlaps


def test_parallel_workers_are_all_busy_and_never_share_a_class(tmp_path, monkeypatch):
    """Two thread workers, a fake 50 ms training: record what runs at the same time."""
    overlaps = _slow_trainings(monkeypatch, threads=None)
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


def test_a_search_on_a_cluster_keeps_all_its_workers_busy(tmp_path, monkeypatch):
    """On a Dask cluster the trainings in flight follow the cluster's workers, not this
    machine's cores (here a 'cluster' of three more threads than this machine has cores)."""
    from actbench.executors import default_workers

    cluster = default_workers("cpu") + 3
    overlaps = _slow_trainings(monkeypatch, threads=cluster, seconds=0.5)  # all start first
    run_search(config(budget=3 * cluster), tmp_path, scheduler="tcp://cluster:8786",
               progress=False)
    assert max(len(together) for together in overlaps) == cluster


def _flaky_pools(monkeypatch, broken_for):
    """Pools that run in process, but whose worker 'dies' (BrokenProcessPool) whenever
    ``broken_for(function, pool_number)`` says so; returns the list of opened pools."""
    from concurrent.futures import Executor, Future
    from concurrent.futures.process import BrokenProcessPool
    from contextlib import contextmanager

    from actbench import executors

    opened: list[int] = []
    real = executors.make_executor

    class Flaky(Executor):
        def __init__(self, serial):
            self.serial = serial

        def submit(self, fn, *args, **kwargs):
            if fn is live.train_functions and broken_for(args[1][0], len(opened)):
                future = Future()
                future.set_exception(BrokenProcessPool("a worker died"))
                return future
            return self.serial.submit(fn, *args, **kwargs)

    @contextmanager
    def make_executor(workers, scheduler, device):
        opened.append(len(opened) + 1)
        with real(0, None) as serial:
            yield Flaky(serial)

    monkeypatch.setattr(executors, "make_executor", make_executor)
    return opened


def test_a_dead_worker_is_retried_on_a_new_pool_and_never_recorded(tmp_path, monkeypatch):
    opened = _flaky_pools(monkeypatch, lambda function, pool: function == "relu(x)" and pool == 1)
    evaluations = run_search(config(budget=10), tmp_path, workers=0, progress=False)
    assert len(opened) == 2  # the broken pool was replaced
    names = [e.function for e in evaluations]
    assert len(names) == 10 and names.count("relu(x)") == 1
    assert all(math.isfinite(e.val_accuracy) for e in evaluations)
    again = run_search(config(budget=10), tmp_path, workers=0, progress=False)
    assert [e.function for e in again] == names  # the study file resumes as it is


def test_a_function_whose_worker_always_dies_stops_the_search_resumably(tmp_path, monkeypatch):
    _flaky_pools(monkeypatch, lambda function, pool: function == "relu(x)")
    with pytest.raises(ActError, match=r"relu\(x\) was lost 3 times"):
        run_search(config(budget=10), tmp_path, workers=0, progress=False)
    monkeypatch.undo()
    evaluations = run_search(config(budget=10), tmp_path, workers=0, progress=False)
    assert len(evaluations) == 10 and "relu(x)" in [e.function for e in evaluations]


def test_study_rows_without_accuracy_run_again_and_bad_rows_are_named(tmp_path):
    import sqlite3

    from actsearch.study import Study

    path = tmp_path / "study.sqlite"
    Study(path, {"a": 1}).close()
    with sqlite3.connect(path) as db:  # what an earlier act wrote for a dead worker
        db.execute("INSERT INTO evaluations VALUES ('relu(x)', 0, NULL, NULL, 'failed', 0, 0,"
                   " '{}')")
        db.execute("INSERT INTO evaluations VALUES ('tanh(x)', 1, 0.9, 0.9, 'ok', 1, 0, '{')")
    study = Study(path, {"a": 1})
    assert study.dropped == 1
    with pytest.raises(ActError, match=r"the row of 'tanh\(x\)' cannot be read"):
        study.evaluations()
    study.close()


def test_in_order_mode_picks_the_same_functions_whoever_finishes_first(tmp_path, monkeypatch):
    """Workers finish in a different order on every run; with in_order the search takes
    the results in submission order, so identical runs evaluate identical functions."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor
    from contextlib import contextmanager

    from actbench import executors

    real = live.train_functions
    started: list[str] = []
    finished: list[str] = []
    lock = threading.Lock()
    slow_parity = 0

    def slow(task, functions, seed, overrides):
        (function,) = functions
        with lock:
            started.append(function)
            index = len(started)
        time.sleep(0.3 if index % 2 == slow_parity else 0.0)  # every other job lags
        result = real(task, functions, seed, overrides)
        with lock:
            finished.append(function)
        return result

    @contextmanager
    def threads(workers, scheduler, device):
        with ThreadPoolExecutor(2) as pool:
            yield pool

    monkeypatch.setattr(live, "train_functions", slow)
    monkeypatch.setattr(executors, "make_executor", threads)
    picked, completions = [], []
    for run in range(2):
        slow_parity = run  # the other half of the jobs lags in the second run
        started.clear()
        finished.clear()
        evaluations = run_search(config(budget=14, in_order=True), tmp_path / str(run),
                                 workers=2, progress=False)
        picked.append([e.function for e in evaluations])
        completions.append(list(finished))
    assert completions[0] != completions[1]  # the workers really finished in other orders
    assert picked[0] == picked[1]


def test_a_dead_worker_while_computing_features_restarts_the_pool(tmp_path, monkeypatch):
    from concurrent.futures.process import BrokenProcessPool

    real = live.prepare
    calls = []

    def prepare(config, out, executor, progress=True, **options):
        calls.append(executor)
        if len(calls) == 1:
            raise BrokenProcessPool("a worker died")
        return real(config, out, executor, progress, **options)

    monkeypatch.setattr(live, "prepare", prepare)
    evaluations = run_search(config(budget=9), tmp_path, workers=0, progress=False)
    assert len(calls) == 2 and calls[0] is not calls[1] and len(evaluations) == 9


def test_the_extended_baselines_are_trained_first(tmp_path):
    """CoAtNet's search started from 13 functions; those outside the space join it."""
    from actsearch.features import BASELINES, EXTENDED_BASELINES, baselines_of

    assert SearchConfig(task="mlp-digits", space=["x"]).baselines == BASELINES  # published 8
    assert baselines_of("extended") == EXTENDED_BASELINES and len(EXTENDED_BASELINES) == 13
    assert baselines_of("relu, gelu") == ("relu(x)", "gelu(x)")
    evaluations = run_search(config(budget=14, baselines=EXTENDED_BASELINES), tmp_path,
                             workers=0, progress=False)
    assert sorted(e.function for e in evaluations[:13]) == sorted(EXTENDED_BASELINES)
    assert evaluations[13].function not in EXTENDED_BASELINES
    with pytest.raises(ActError, match="settings"):  # a study keeps its baselines
        run_search(config(budget=15), tmp_path, workers=0, progress=False)


def test_a_stacked_search_gives_each_free_worker_k_suggestions(tmp_path, monkeypatch):
    """--stack K: the strategy is asked for K suggestions per free worker and each job
    trains K functions side by side; the results are the solo trainings' up to rounding."""
    jobs: list[list[str]] = []
    real = live.train_functions

    def train_stack(task, functions, seed, overrides):
        jobs.append(list(functions))
        return real(task, functions, seed, overrides)

    monkeypatch.setattr(live, "train_functions", train_stack)
    evaluations = run_search(config(budget=14), tmp_path / "k", workers=0, progress=False,
                             stack=4)  # fmt: skip
    names = [e.function for e in evaluations]
    assert [len(job) for job in jobs] == [4, 4, 4, 2]  # the budget cuts the last job
    assert [f for job in jobs for f in job] == names and names[:8] == list(BASELINES)
    assert len(equivalence_classes(names)) == 14
    # each job's results are exactly what that stack trains (that a stack's members follow
    # their solo runs is shown in float64 by actbench's stacked-training tests: in float32
    # a function near chance turns the rounding a stack changes into whole images)
    again = {r.activation: r for r in real("mlp-digits", names[:4], 0, {"epochs": 1})}
    for e in evaluations[:4]:
        assert e.val_accuracy == again[e.function].val_accuracy


def test_the_automatic_stack_keeps_at_most_eight_trainings_in_flight(tmp_path, monkeypatch):
    """Without --stack the search stacks where it pays (the digits MLP), but no more than
    the paper's eight parallel trainings wait for results at once: a surrogate suggests
    better from more results."""
    jobs: list[int] = []
    real = live.train_functions

    def train_stack(task, functions, seed, overrides):
        jobs.append(len(functions))
        return real(task, functions, seed, overrides)

    monkeypatch.setattr(live, "train_functions", train_stack)
    run_search(config(budget=12), tmp_path, workers=0, progress=False, stack=None)
    assert jobs == [8, 4]  # one worker in process: stacks of 8, the budget cuts the last


@pytest.mark.parametrize(("field", "value", "message"), [
    ("features", "unoin", "unknown feature set 'unoin'"),
    ("strategy", "surogate", "unknown strategy 'surogate'"),
    ("regressor", "knn", "unknown regressor 'knn'"),
    ("fisher_features", "cdfs", "unknown Fisher feature 'cdfs'"),
    ("device", "meta", "device 'meta' is not supported"),
])  # fmt: skip
def test_a_search_config_checks_its_names_once_when_made(field, value, message):
    """Unknown names fail where the search is defined, with act's error (close names
    suggested), before anything runs; the search itself then trusts them."""
    with pytest.raises(ActError, match=message):
        config(**{field: value})
