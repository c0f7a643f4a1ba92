"""``act bench``: listings, train --json, compare with table, plot and resumable results."""

from __future__ import annotations

import json
import re

import pytest

import actbench.cli
from actbench import TIMINGS, Result
from actbench.compare import load_results, summarise, table
from actcore.cli import main


def test_models_lists_parameter_counts_for_a_dataset(capsys):
    assert main(["bench", "models", "--dataset", "fashion-mnist"]) == 0
    out = capsys.readouterr().out
    assert "431,080" in out and "889,834" in out
    assert "alexnet" in out and "n/a" in out  # 28x28 is too small for AlexNet


def test_listings(capsys):
    assert main(["bench", "tasks"]) == 0
    out = capsys.readouterr().out
    for task in ("mlp-digits", "cnn-digits", "lenet5-fashion-mnist", "kerasnet-cifar10",
                 "allcnnc-cifar10", "resnet56-cifar10"):  # fmt: skip
        assert task in out
    assert main(["bench", "datasets"]) == 0
    assert "digits" in capsys.readouterr().out


def test_train_json_prints_one_record_per_seed(capsys):
    assert main(["bench", "train", "-t", "mlp-digits", "-a", "relu", "--seeds", "2",
                 "--epochs", "1", "--json"]) == 0  # fmt: skip
    records = [Result.model_validate(r) for r in json.loads(capsys.readouterr().out)]
    assert [r.seed for r in records] == [0, 1]
    assert all(r.epochs == 1 and r.activation == "relu(x)" for r in records)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-t", "nope", "-a", "relu"], "unknown task 'nope'"),
        (["-t", "mlp-digits", "-a", "relu(x"], "position"),
        (["-t", "mlp-digits", "-a", "relu", "--seeds", "0"], "--seeds"),
        (["-t", "mlp-digits", "-a", "relu", "--set", "lr"], "FIELD=VALUE"),
        (["-t", "mlp-digits", "-a", "relu", "--set", "lr=-1"], "lr"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    assert main(["bench", "train", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("option", "name", "message"),
    [
        ("--curves", "figure.txt", "a figure file ends in .png, .pdf, .svg"),
        ("--learned-plot", "figure.txt", "a figure file ends in .png, .pdf, .svg"),
        ("-o", "figure.txt", "a figure file ends in .png, .pdf, .svg"),
        ("--curves", "a-file/c.png", "cannot create the folder"),
        ("-o", "a-file/box.png", "cannot create the folder"),
        ("--results", "a-file/runs.jsonl", "cannot create the folder"),
    ],
)
def test_a_bad_output_fails_before_any_training(option, name, message, tmp_path, capsys,
                                                monkeypatch):
    """A grid of hours must not end in 'cannot draw' or 'cannot write': each output's
    name and folder are checked first."""
    monkeypatch.setattr("actbench.cli.run_comparison", lambda *a, **k: pytest.fail("trained"))
    (tmp_path / "a-file").touch()
    argv = ["bench", "compare", "-t", "mlp-digits", "-a", "relu", "--epochs", "1",
            option, str(tmp_path / name)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("act: error: ") and message in err and err.count("\n") == 1


def test_compare_into_a_file_another_comparison_trains_into_is_refused_in_one_line(
        tmp_path, capsys):
    from actcore.lock import exclusive

    results = tmp_path / "runs.jsonl"
    with exclusive(results, "the results file"):
        assert main(["bench", "compare", "-t", "mlp-digits", "-a", "relu", "--epochs", "1",
                     "--results", str(results)]) == 2  # fmt: skip
    err = capsys.readouterr().err  # the error, last, and no progress bar before it
    assert err.splitlines()[-1].startswith(f"act: error: the results file {results} is in "
                                           "use by pid ")  # fmt: skip
    assert "run/s" not in err and not results.exists()


def test_train_refuses_a_checkpoint_it_cannot_write_before_training(tmp_path, capsys,
                                                                   monkeypatch):
    monkeypatch.setattr("actbench.cli.train", lambda *a, **k: pytest.fail("trained"))
    (tmp_path / "a-file").touch()
    argv = ["bench", "train", "-t", "mlp-digits", "-a", "relu", "--checkpoint",
            str(tmp_path / "a-file" / "c.pt")]
    assert main(argv) == 2
    assert "cannot create the folder" in capsys.readouterr().err


def test_compare_prints_table_writes_plot_and_resumes(tmp_path, capsys, monkeypatch):
    plot, results = tmp_path / "cmp.png", tmp_path / "runs.jsonl"
    argv = ["bench", "compare", "-t", "mlp-digits", "-a", "relu", "-a", "identity(x)",
            "--seeds", "2", "--epochs", "2", "-o", str(plot),
            "--results", str(results)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "relu(x)" in out and "identity(x)" in out and "val median" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = load_results(results)
    assert sorted((r.activation, r.seed) for r in saved) == [
        ("identity(x)", 0), ("identity(x)", 1), ("relu(x)", 0), ("relu(x)", 1)]
    assert table(summarise(saved)) in out

    def no_training(*args, **kwargs):
        raise AssertionError("finished runs must not be trained again")

    monkeypatch.setattr(actbench.cli, "train_many", no_training)
    assert main([*argv, "--markdown"]) == 0
    assert "| relu(x) | 2 | 0 |" in capsys.readouterr().out
    at = argv.index("--epochs")
    for epochs in (["--epochs", "3"], ["--set", "epochs=1"], []):  # not the runs saved
        assert main([*argv[:at], *epochs, *argv[at + 2:]]) == 2
        assert "runs trained with epochs=2 (relu(x), seed 0), not the" in capsys.readouterr().err
    assert main([*argv, "--set", "lr=0.01"]) == 2  # another recipe: not silently reused
    assert "runs trained with lr=0.003 (relu(x), seed 0), not the lr=0.01" in \
        capsys.readouterr().err
    assert main([*argv, "--set", "threads=2"]) == 0  # how it runs, not what it computes
    assert all(r.recipe is not None and r.recipe["epochs"] == 2 for r in saved)


def test_compare_still_checks_the_epochs_of_runs_saved_without_a_recipe(tmp_path, capsys):
    results = tmp_path / "old.jsonl"
    record = dict(task="mlp-digits", activation="relu(x)", seed=0, status="ok",
                  train_accuracy=0.5, val_accuracy=0.5, test_accuracy=0.5, train_loss=1.0,
                  val_loss=1.0, test_loss=1.0, runtime_s=1.0, epochs=2)
    results.write_text(json.dumps(record) + "\n")  # a file written before act kept recipes
    argv = ["bench", "compare", "-t", "mlp-digits", "-a", "relu", "--results", str(results)]
    assert main([*argv, "--epochs", "3"]) == 2
    assert "runs of 2 epochs (relu(x), seed 0), not the 3 asked for" in capsys.readouterr().err


def test_compare_on_worker_processes_equals_one_at_a_time(tmp_path, capsys):
    """mlp-digits trains on one thread either way, so the runs are the same to the bit;
    each run is saved as it finishes, so half a comparison resumes with the other half."""
    common = ["bench", "compare", "-t", "mlp-digits", "-a", "relu", "-a", "tanh",
              "--epochs", "2"]  # fmt: skip
    serial, pooled = tmp_path / "serial.jsonl", tmp_path / "pooled.jsonl"
    assert main([*common, "--seeds", "2", "--results", str(serial)]) == 0
    assert main([*common, "--seeds", "1", "--workers", "2", "--results", str(pooled)]) == 0
    first = load_results(pooled)
    assert len(first) == 2
    capsys.readouterr()
    assert main([*common, "--seeds", "2", "--workers", "2", "--results", str(pooled)]) == 0
    err = capsys.readouterr().err  # the saved runs are named as such, the new ones not
    saved = re.findall(r"(\S+ seed \d): val [^\n]*\(saved earlier\)", err)
    assert sorted(saved) == ["relu(x) seed 0", "tanh(x) seed 0"]
    assert "mlp-digits:  50%|█████     | 2/4 [00:00<?, ?run/s]" in err  # rate: new runs only
    assert re.search(r"relu\(x\) seed 1: val [^\n]*ok\n", err)
    assert load_results(pooled)[:2] == first  # kept as they were (runtimes too): not rerun

    def key(r):
        return r.activation, r.seed

    a, b = sorted(load_results(serial), key=key), sorted(load_results(pooled), key=key)
    assert [key(r) for r in a] == [key(r) for r in b] == [
        ("relu(x)", 0), ("relu(x)", 1), ("tanh(x)", 0), ("tanh(x)", 1)]
    assert [r.model_dump(exclude=TIMINGS) for r in a] == [
        r.model_dump(exclude=TIMINGS) for r in b]


def test_summaries_are_medians_and_sample_stds():
    runs = [Result(task="t", activation="a", seed=s, status="ok", train_accuracy=0, val_accuracy=v,
                   test_accuracy=v / 2, train_loss=0, val_loss=0, test_loss=0, runtime_s=0,
                   epochs=1) for s, v in enumerate([0.2, 0.4, 0.9])]  # fmt: skip
    (s,) = summarise(runs)
    assert (s.val_median, s.test_median) == (0.4, 0.2)
    assert s.val_mean == pytest.approx(0.5) and s.val_std == pytest.approx(0.3605551, rel=1e-6)
    # t(0.975, 2 degrees of freedom) = 4.302653: mean 0.25 ± 4.302653 * 0.1802776 / sqrt(3),
    # cut at 0 (no accuracy is below)
    half = 4.302653 * 0.1802776 / 3**0.5
    assert s.test_ci95 == pytest.approx((0.0, 0.25 + half), rel=1e-6)
    runs = [r.model_copy(update={"test_accuracy": 0.8 + r.test_accuracy / 10}) for r in runs]
    (s,) = summarise(runs)  # 0.81, 0.82, 0.845: mean 0.825 ± 4.302653 * 0.0180278 / sqrt(3)
    half = 4.302653 * 0.01802776 / 3**0.5
    assert s.test_ci95 == pytest.approx((0.825 - half, 0.825 + half), rel=1e-6)
    (one,) = summarise(runs[:1])  # one seed: no spread, no interval, said so in the table
    assert (one.val_std, one.test_std, one.test_ci95) == (None, None, None)
    assert table([one]).splitlines()[1].split()[3:] == ["20.00", "20.00", "81.00", "81.00", "–"]


def test_compare_stacks_one_seeds_functions_and_logs_the_choice(tmp_path, capsys, monkeypatch):
    """--stack K hands K functions of one seed to one train_many call; the results are
    the solo runs' up to float32 rounding."""
    calls = []
    real = actbench.cli.train_many

    def counting(task, activations, seed, **settings):
        calls.append((list(activations), seed, settings["stack"]))
        return real(task, activations, seed, **settings)

    monkeypatch.setattr(actbench.cli, "train_many", counting)
    common = ["bench", "compare", "-t", "mlp-digits", "-a", "relu", "-a", "tanh", "-a", "selu",
              "--epochs", "2", "--seeds", "2"]  # fmt: skip
    assert main([*common, "--stack", "2", "--results", str(tmp_path / "s.jsonl")]) == 0
    assert calls == [(["relu(x)", "tanh(x)"], 0, 2), (["selu(x)"], 0, 2),
                     (["relu(x)", "tanh(x)"], 1, 2), (["selu(x)"], 1, 2)]  # fmt: skip
    calls.clear()
    assert main([*common, "--stack", "1", "--results", str(tmp_path / "1.jsonl")]) == 0
    assert len(calls) == 6 and all(len(a) == 1 for a, _, _ in calls)
    for s, one in zip(load_results(tmp_path / "s.jsonl"), load_results(tmp_path / "1.jsonl"),
                      strict=True):  # fmt: skip
        assert (s.activation, s.seed) == (one.activation, one.seed)
        assert s.val_loss == pytest.approx(one.val_loss, rel=1e-3)
    calls.clear()
    capsys.readouterr()
    assert main(["bench", "compare", "-t", "cnn-digits", "-a", "relu", "-a", "tanh",
                 "--epochs", "1"]) == 0  # fmt: skip
    assert calls[0][2] == 1  # the CLI logs on stderr
    assert "cnn-digits on cpu: one at a time (stacking does not pay)" in capsys.readouterr().err
    assert main(["bench", "compare", "-t", "mlp-digits", "-a", "relu", "--stack", "0"]) == 2
