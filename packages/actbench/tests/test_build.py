"""``act bench build``: a tiny space end to end, resume after a crash, failures recorded,
the Dask path, the card."""

from __future__ import annotations

import json
import math
import statistics

import pytest
import torch

import actbench.build as build_loop
import actbench.build_units as build_module
from actbench.build import BuildConfig, build, make_plan, store_path
from actbench.build_plan import build_order
from actbench.card import NOT_RECORDED, card_path, read_card
from actbench.tables import read_table
from actbench.workstore import WorkStore
from actcore import ActError
from actcore.cli import main
from actcore.machine import describe_machine

# 2 binary x 3 x 3 unary = 18 functions; div by zero(x) fails, add(zero,zero) is constant
OPERATORS = ["zero", "relu", "tanh", "add", "div"]
SCHEMA = "binary(unary(x),unary(x))"


def config(**changes) -> BuildConfig:
    settings = dict(task="mlp-digits", schemas=[SCHEMA], operators=OPERATORS, seeds=1,
                    overrides={"epochs": 1}, fisher_batch=32, device="cpu")  # fmt: skip
    return BuildConfig(**{**settings, **changes})


@pytest.fixture
def counted(monkeypatch):
    """Count the trainings the builder runs (in process: ``workers=0``)."""
    calls: list[tuple[str, int]] = []
    real = build_module.train_many  # every training of a build goes through it

    def train_many(task, functions, seed, **kwargs):
        calls.extend((function, seed) for function in functions)
        return real(task, functions, seed, **kwargs)

    monkeypatch.setattr(build_module, "train_many", train_many)
    return calls


def test_tiny_space_end_to_end(tmp_path, counted):
    out = tmp_path / "tiny.json.gz"
    summary = build(config(seeds=2), out, workers=0, progress=False)
    plan = make_plan(config())
    assert summary.out == out and summary.computed == summary.units == 3 * plan.classes
    assert len(counted) == summary.trainings == 2 * plan.classes
    table = read_table(out)
    assert sorted(table) == sorted(plan.representatives)
    # every function of the space finds its class's row
    for name in plan.space:
        assert str(name) in table
    ok = table["add(relu(x),tanh(x))"]
    assert ok.val_accuracy > 0.3 and math.isfinite(ok.val_loss) and ok.has_fisher
    assert "add(tanh(x),relu(x))" in ok.equivalent
    dead = table["div(relu(x),zero(x))"]  # x / 0: non-finite loss
    assert dead.val_accuracy == pytest.approx(0.1) and math.isnan(dead.val_loss)
    assert not dead.has_fisher and table.failed("div(relu(x),zero(x))")
    # a second run of the same command computes nothing and writes the same table
    again = build(config(seeds=2), out, workers=0, progress=False)
    assert again.computed == 0 and again.reused == summary.units
    assert len(counted) == 2 * plan.classes


def test_resume_after_a_crash_repeats_nothing(tmp_path, counted):
    out = tmp_path / "t.json"
    batches = []

    def crash(results):
        batches.append(results)
        if len(batches) == 3:
            raise KeyboardInterrupt  # killed after 3 batches were recorded

    with pytest.raises(KeyboardInterrupt):
        build(config(), out, workers=0, per_task=1, progress=False, on_batch=crash)
    assert not out.exists()  # no partial table
    trained_before = len(counted)
    assert trained_before == 3  # one function (1 seed + Fisher) per batch
    with WorkStore(store_path(out), config().settings()) as store:
        assert len(store) == 6
    summary = build(config(), out, workers=0, per_task=1, progress=False)
    assert summary.reused == 6 and summary.computed == summary.units - 6
    assert len(counted) == make_plan(config()).classes  # each function trained once
    assert len(set(counted)) == len(counted)
    assert len(read_table(out)) == make_plan(config()).classes


def test_a_snapshot_of_a_stopped_build_is_a_table_of_its_first_classes(tmp_path, capsys):
    """``act bench snapshot`` writes what a build has finished (the start of its order,
    so a sample of the space) as a table and card; the finished build's rows agree."""
    out, snap, batches = tmp_path / "t.json", tmp_path / "snap.json.gz", []

    def stop_after_three(results):  # a batch: one class's training and spectrum
        batches.append(results)
        if len(batches) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build(config(), out, workers=0, per_task=1, progress=False, on_batch=stop_after_three)
    assert main(["bench", "snapshot", str(out), "-o", str(snap)]) == 0
    assert capsys.readouterr().out.startswith(f"3 of {make_plan(config()).classes} classes")
    plan = make_plan(config())
    partial, card = read_table(snap), read_card(card_path(snap))
    assert sorted(partial) == sorted(plan.representatives[i] for i in plan.order[:3])
    assert card.rows == 3 and not card.complete and card.task == "mlp-digits"
    whole = read_table(build(config(), out, workers=0, progress=False).out)
    for name, row in partial.items():
        assert row.model_dump(exclude={"runtime"}) == whole[name].model_dump(exclude={"runtime"})
    for argv, message in [([str(tmp_path / "none.json")], "none.json.work.sqlite does not exist"),
                          ([str(out), "-o", str(tmp_path / "s.txt")], "must end in .json")]:
        assert main(["bench", "snapshot", *argv]) == 2
        assert message in capsys.readouterr().err


def test_a_raising_function_is_recorded_not_raised(tmp_path, monkeypatch):
    real = build_module.train_many

    def train_many(task, functions, seed, **kwargs):
        if "add(relu(x),tanh(x))" in functions:
            raise KeyError("operator exploded")
        return real(task, functions, seed, **kwargs)

    monkeypatch.setattr(build_module, "train_many", train_many)
    out = tmp_path / "t.json"
    summary = build(config(limit=6), out, workers=0, progress=False)
    assert summary.out == out
    row = read_table(out)["add(relu(x),tanh(x))"]
    assert row.val_accuracy == pytest.approx(0.1) and math.isnan(row.train_loss)
    with WorkStore(store_path(out), config().settings()) as store:
        failed = [r for r in store.results() if r.key.function == "add(relu(x),tanh(x))"
                  and r.key.kind == "train"]  # fmt: skip
    assert failed[0].reason == "KeyError: 'operator exploded'" and not failed[0].ok


def test_a_limited_build_is_the_start_of_the_full_builds_order():
    """A build runs its classes in one fixed order, which a ``limit`` cuts: a build of N
    classes, then the whole one, repeats nothing, and a preview of a build under way
    equals a limited table. Rows keep the space's order."""
    full, part = make_plan(config()), make_plan(config(limit=6))
    order = [full.representatives[i] for i in full.order]
    assert sorted(full.order) == list(range(full.classes)) and order != full.representatives
    assert [part.representatives[i] for i in part.order] == order[:6]
    assert part.representatives == [r for r in full.representatives if r in order[:6]]
    assert [k.function for k in full.units(2) if k.kind == "fisher"] == order
    assert part.units(2) == full.units(2)[: 6 * 3]


def test_the_build_order_spreads_any_start_over_the_whole_space():
    """The space's order groups functions by their operators: the first 300 of the CNN
    space's 2,791 classes to be built come from every tenth of it in about equal numbers
    (30 expected, binomial sd 5), not from its start."""
    first = build_order(2791)[:300]
    assert sorted(build_order(2791)) == list(range(2791)) and build_order(2791)[:300] == first
    per_tenth = [sum(n * 10 // 2791 == tenth for n in first) for tenth in range(10)]
    assert min(per_tenth) >= 15, per_tenth


def test_card_and_settings_guard(tmp_path):
    out = tmp_path / "t.json.gz"
    build(config(limit=3), out, workers=0, progress=False)
    card = read_card(card_path(out))
    assert card_path(out).name == "t.card.json"
    assert card.task == "mlp-digits" and card.recipe["epochs"] == 1 and card.seeds == [0]
    assert card.splits == {"train": 1077, "val": 360, "test": 360}
    assert card.rows == 3 and card.classes == make_plan(config()).classes
    assert not card.complete and sorted(card.operators) == sorted(OPERATORS)
    assert {"torch", "actbench", "actcore", "actfim"} <= set(card.versions)
    assert card.hardware["cores"] >= 1 and card.cpu_s > 0 and card.wall_s > 0
    here = describe_machine("cpu")
    assert card.hardware["kernels"] == torch.backends.cpu.get_cpu_capability()
    assert card.machines == {here: 2 * card.rows}  # a training and a spectrum a class
    with pytest.raises(ActError, match="other settings"):
        build(config(seeds=2, limit=3), out, workers=0, progress=False)
    # a smaller build on the same store: its card counts the CPU time of its own units
    build(config(limit=2), out, workers=0, progress=False)
    with WorkStore(store_path(out), config().settings()) as store:
        own = {k.function for k in make_plan(config(limit=2)).units(1)}
        expected = sum(r.cpu_s for r in store.results() if r.key.function in own)
    assert read_card(card_path(out)).cpu_s == pytest.approx(expected)
    assert expected < card.cpu_s


def test_the_card_counts_units_per_machine_and_older_units_as_not_recorded(tmp_path):
    """Units of a store written before act recorded machines count as not recorded;
    units computed since count under the machine that computed them."""
    out = tmp_path / "t.json.gz"
    build(config(limit=2), out, workers=0, progress=False)
    with WorkStore(store_path(out), config().settings()) as store:
        older = [r.model_copy(update={"machine": None}) for r in store.results()]
        store.add(older)
    build(config(limit=3), out, workers=0, progress=False)
    assert read_card(card_path(out)).machines == {NOT_RECORDED: 2 * 2,
                                                  describe_machine("cpu"): 2}


def test_dask_local_cluster_same_table(tmp_path, caplog):
    """A worker with two threads runs two units at once in one process: same table."""
    distributed = pytest.importorskip("distributed")
    cfg = config(limit=4)
    local = build(cfg, tmp_path / "local.json", workers=0, progress=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=":0") as cluster:  # fmt: skip
        summary = build(cfg, tmp_path / "dask.json", scheduler=cluster.scheduler_address,
                        progress=False)  # fmt: skip
        stacked = build(cfg, tmp_path / "dask-k.json", scheduler=cluster.scheduler_address,
                        progress=False, stack=2)  # fmt: skip
    assert "--nthreads 1" in caplog.text  # told how to use every core
    assert summary.computed == summary.units == local.units
    a, b = read_table(local.out), read_table(summary.out)
    assert list(a) == list(b)
    for name in a:
        assert a[name].val_accuracy == b[name].val_accuracy
        assert a[name].fisher_cdf == b[name].fisher_cdf
    # Dask workers take the stacked path too: the same stacks give the same table
    local_stacked = build(cfg, tmp_path / "local-k.json", workers=0, progress=False, stack=2)
    c, d = read_table(stacked.out), read_table(local_stacked.out)
    assert list(c) == list(d)
    for name in c:
        assert c[name].model_dump(exclude={"runtime"}) == d[name].model_dump(exclude={"runtime"})


def test_cli_local_processes_and_bad_input(tmp_path, capsys):
    out = tmp_path / "cli.json"
    argv = ["bench", "build", "--task", "mlp-digits", "--space", SCHEMA, "--operators",
            ",".join(OPERATORS), "--seeds", "1", "--epochs", "1", "--fisher-batch", "32",
            "--limit", "2", "--workers", "1", "--out", str(out)]
    assert main(argv) == 0
    assert "table written" in capsys.readouterr().err
    data = json.loads(out.read_text())
    assert len(data) == 2 and all("Fisher log eigenvalue CDF" in row for row in data.values())
    bad = [
        (["--task", "nope", "--space", SCHEMA, "--out", "x.json"], "unknown task 'nope'"),
        (["--task", "mlp-digits", "--space", SCHEMA, "--out", str(tmp_path / "x.txt")],
         "--out must end in .json or .json.gz"),
        (["--task", "mlp-digits", "--space", "binary(bogus(x),x)", "--out",
          str(tmp_path / "y.json")], "unknown operator 'bogus'"),
        (["--task", "mlp-digits", "--space", SCHEMA, "--device", "gpu", "--out",
          str(tmp_path / "y.json")], "unknown device 'gpu'"),
    ]  # fmt: skip
    if not torch.cuda.is_available():  # fails before any work: no work store
        bad.append((["--task", "mlp-digits", "--space", SCHEMA, "--device", "cuda", "--out",
                     str(tmp_path / "y.json")], "'cuda', but no CUDA device is available"))
    for argv, message in bad:
        assert main(["bench", "build", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    assert not (tmp_path / "x.txt").exists() and not (tmp_path / "y.json").exists()
    assert not store_path(tmp_path / "y.json").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_build_on_cuda(tmp_path):
    out = tmp_path / "t.json"
    summary = build(config(limit=4, device="cuda"), out, workers=1, progress=False)
    assert summary.out == out and read_card(card_path(out)).workers.endswith("device cuda")
    rows = read_table(out)
    assert len(rows) == 4 and any(r.has_fisher and r.val_accuracy > 0.3 for r in rows.values())


def test_every_unit_runs_on_the_device_set_and_a_build_may_change_device(
    tmp_path, monkeypatch
):
    """The device reaches each training and spectrum; it is where the work runs, not what
    it computes, so a build begun on one device goes on on another."""
    import actfim.batch

    devices = []
    train, spectra = build_module.train_many, actfim.batch.spectra_for_activations

    def train_many(task, functions, seed, **kwargs):
        devices.append(("train", kwargs["device"]))
        return train(task, functions, seed, **kwargs)

    def spectra_for_activations(*args, **kwargs):
        devices.append(("fisher", kwargs["device"]))
        return spectra(*args, **kwargs)

    monkeypatch.setattr(build_module, "train_many", train_many)
    monkeypatch.setattr(actfim.batch, "spectra_for_activations", spectra_for_activations)
    out = tmp_path / "t.json"
    first = build(config(limit=2, device="cpu"), out, workers=0, progress=False)
    assert sorted(devices) == [("fisher", torch.device("cpu"))] * 2 + [("train", "cpu")] * 2
    assert read_card(card_path(out)).workers == "in process, device cpu"
    devices.clear()
    more = build(config(limit=3, device=None), out, workers=0, progress=False)  # default
    assert more.reused == first.units and more.computed == 2
    assert ("train", None) in devices


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(task="lenet5-cifar10"), "dataset files not found"),  # no data here
        (dict(fisher_batch=100_000), "fewer than the Fisher batch of 100000"),
    ],
)
def test_what_is_wrong_for_every_function_stops_before_any_work(tmp_path, counted,
                                                                 monkeypatch, changes, message):
    """A configuration error must not become a table of failures at chance."""
    monkeypatch.setenv("ACT_DATA", str(tmp_path / "no-data"))
    out = tmp_path / "t.json"
    with pytest.raises(ActError, match=message):
        build(config(**changes), out, workers=0, progress=False)
    assert counted == [] and not out.exists() and not store_path(out).exists()


def test_an_act_error_inside_a_unit_stops_the_build(tmp_path, monkeypatch):
    def train_many(task, functions, seed, **kwargs):
        raise ActError("the data folder vanished")

    monkeypatch.setattr(build_module, "train_many", train_many)
    with pytest.raises(ActError, match="vanished"):
        build(config(limit=2), tmp_path / "t.json", workers=0, progress=False)
    assert not (tmp_path / "t.json").exists()


def test_a_second_build_of_the_same_table_is_refused(tmp_path, counted):
    from actcore.lock import exclusive

    out = tmp_path / "t.json"
    running = exclusive(store_path(out), "the work store")  # a build running elsewhere
    with running, pytest.raises(ActError, match="is in use by pid"):
        build(config(limit=2), out, workers=0, progress=False)
    assert counted == []


def test_no_table_without_its_card_and_no_stale_temporaries(tmp_path, monkeypatch):
    out = tmp_path / "t.json"
    stale = [tmp_path / ".t.json.tmp-dead01.json", tmp_path / ".t.card.json.tmp-dead02.json"]
    for path in stale:  # left by a writer killed during its final write
        path.write_text("{")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build_loop, "write_card", killed)
    with pytest.raises(KeyboardInterrupt):
        build(config(limit=2), out, workers=0, progress=False)
    assert not out.exists()  # the card is written first: no table without it
    assert not any(path.exists() for path in stale)
    monkeypatch.undo()
    summary = build(config(limit=2), out, workers=0, progress=False)
    assert summary.out == out and card_path(out).exists() and summary.computed == 0


def _flaky_pools(monkeypatch, broken_for):
    """In-process pools whose batches 'lose their worker' (BrokenProcessPool) when
    ``broken_for(functions, pool_number)``; returns the list of opened pools."""
    from concurrent.futures import Executor, Future
    from concurrent.futures.process import BrokenProcessPool
    from contextlib import contextmanager

    from actbench import executors
    from actbench.executors import SerialExecutor

    opened: list[int] = []

    class Flaky(Executor):
        def submit(self, fn, config, keys, *more):
            if broken_for({k.function for k in keys}, len(opened)):
                future = Future()
                future.set_exception(BrokenProcessPool("a worker died"))
                return future
            return SerialExecutor().submit(fn, config, keys, *more)

    @contextmanager
    def make_executor(workers, scheduler, device):
        opened.append(len(opened) + 1)
        yield Flaky()

    monkeypatch.setattr(executors, "make_executor", make_executor)
    return opened


def test_a_dead_worker_restarts_the_pool_and_records_nothing_for_its_units(tmp_path,
                                                                          monkeypatch):
    victim = make_plan(config(limit=4)).representatives[1]
    opened = _flaky_pools(monkeypatch, lambda functions, pool: victim in functions and pool == 1)
    out = tmp_path / "t.json"
    summary = build(config(limit=4), out, workers=1, progress=False)
    assert len(opened) == 2 and summary.out == out
    with WorkStore(store_path(out), config().settings()) as store:
        results = [r for r in store.results() if r.key.function == victim]
    assert len(results) == 2 and all(r.ok or "BrokenProcessPool" not in r.reason
                                     for r in results)


def test_workers_that_keep_dying_stop_the_build_resumably(tmp_path, monkeypatch):
    victim = make_plan(config(limit=4)).representatives[1]
    _flaky_pools(monkeypatch, lambda functions, pool: victim in functions)
    out = tmp_path / "t.json"
    with pytest.raises(ActError, match="workers died 3 times"):
        build(config(limit=4), out, workers=1, progress=False)
    monkeypatch.undo()
    summary = build(config(limit=4), out, workers=0, progress=False)
    assert summary.out == out and summary.computed == 4  # the victim's batch: 2 functions


def test_a_stacked_build_hands_k_functions_to_a_worker_and_agrees_with_one_at_a_time(
        tmp_path, monkeypatch):
    stacks: list[tuple[list[str], int]] = []
    real = build_module.train_many

    def train_many(task, functions, seed, **kwargs):
        stacks.append((list(functions), seed))
        return real(task, functions, seed, **kwargs)

    monkeypatch.setattr(build_module, "train_many", train_many)
    batches: list[int] = []
    stacked = build(config(seeds=2), tmp_path / "k.json", workers=0, progress=False, stack=4,
                    on_batch=lambda results: batches.append(len(results)))  # fmt: skip
    monkeypatch.undo()
    plain = build(config(seeds=2), tmp_path / "1.json", workers=0, progress=False, stack=1)
    classes = make_plan(config()).classes
    # a batch holds 4 functions (fisher + 2 seeds each); each seed's 4 train as one stack
    assert batches[0] == 4 * 3 and len(stacks[0][0]) == 4 and [s for _, s in stacks[:2]] == [0, 1]
    assert sum(len(f) for f, _ in stacks) == stacked.trainings == 2 * classes
    a, b = read_table(stacked.out), read_table(plain.out)
    assert sorted(a) == sorted(b)
    # The table holds exactly what those stacks train. Against the one-at-a-time build it
    # is compared only where float32 rounding cannot reach: a stack and a solo run round
    # differently, and a function that trains near chance turns that into whole images
    # (10 apart on one machine). That members follow their solo runs is shown where it can
    # be exact, in float64, in test_stacked_training.py.
    seeds: dict[str, list[float]] = {}
    for functions, seed in stacks:
        for r in real(config().task, functions, seed, stack=len(functions), epochs=1):
            seeds.setdefault(r.activation, []).append(r.val_accuracy)
    for name in a:
        assert a[name].val_accuracy == statistics.median(seeds[name])
        if not math.isfinite(b[name].train_loss):  # diverged: no rounding moves that
            assert not math.isfinite(a[name].train_loss)
    with pytest.raises(ActError, match="stack must be 1 or more"):
        build(config(), tmp_path / "x.json", workers=0, progress=False, stack=0)


def table_failed(table, name):
    return table.failed(name)
