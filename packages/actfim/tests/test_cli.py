"""``act fim`` with a model plugin registered at run time."""

import json
from importlib.metadata import entry_points

import pytest
import torch

import actfim.batch
from actcore import plugins
from actcore.cli import main

TINY = """
from torch import nn

def tiny(num_classes, input_shape):
    c, h, w = input_shape
    return nn.Sequential(nn.Conv2d(c, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * h * w, num_classes))
"""


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A model of the user's own code, named as ``module:callable``."""
    (tmp_path / "tinyfim_nets.py").write_text(TINY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)


def test_spectrum_command_prints_a_table_and_plots(tiny, tmp_path, capsys):
    png = tmp_path / "spectrum.png"
    status = main(["fim", "spectrum", "--model", "tinyfim_nets:tiny", "--activation", "tanh",
                   "--input-shape", "2,5,5", "--classes", "3", "--batch-size", "16",
                   "--plot", str(png)])
    out = capsys.readouterr().out
    assert status == 0, out
    lines = out.splitlines()
    assert lines[1].split() == ["layer", "kind", "weights", "#eig", "min", "median", "max",
                                "clamped"]
    assert lines[2].split()[:4] == ["0", "Conv2d", "76", "76"]
    assert lines[3].split()[:4] == ["3", "Linear", "303", "303"]
    assert "Fisher CDF feature length: 2" in out
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_invalid_function_exits_1(tiny, capsys):
    status = main(["fim", "spectrum", "--model", "tinyfim_nets:tiny", "--activation", "zero",
                   "--input-shape", "2,5,5", "--classes", "3", "--batch-size", "4"])
    assert status == 1 and "INVALID spectrum" in capsys.readouterr().out


def test_batch_command_resumes_and_exports(tiny, tmp_path, capsys, monkeypatch):
    store, table = tmp_path / "s.sqlite", tmp_path / "t.json"
    args = ["--model", "tinyfim_nets:tiny", "--input-shape",
            "2,5,5", "--classes", "3", "--batch-size", "8", "--store", str(store)]
    computed = []
    run = actfim.batch._Job.run

    def counted(job, names):
        computed.extend(names)
        return run(job, names)

    monkeypatch.setattr(actfim.batch._Job, "run", counted)
    assert main(["fim", "batch", "relu(x)", "tanh(x)", *args]) == 0
    assert sorted(computed) == ["relu(x)", "tanh(x)"]
    computed.clear()
    assert main(["fim", "batch", "relu(x)", "tanh(x)", "sigmoid(x)", *args,
                 "--export", str(table)]) == 0
    assert computed == ["sigmoid(x)"]  # the finished two are read back, not computed
    out = capsys.readouterr().out
    assert "3 functions, 3 valid" in out
    exported = json.loads(table.read_text())
    assert sorted(exported) == ["relu(x)", "sigmoid(x)", "tanh(x)"]


@pytest.mark.parametrize(("command", "option", "name"), [
    ("spectrum", "--plot", "spectrum.csv"),
    ("spectrum", "--plot", "a-file/spectrum.png"),
    ("batch", "--export", "a-file/t.json"),
])
def test_an_output_that_cannot_be_written_fails_before_the_spectra(
        tiny, tmp_path, capsys, monkeypatch, command, option, name):
    monkeypatch.setattr(actfim.batch._Job, "run", lambda *a: pytest.fail("computed"))
    monkeypatch.setattr("actfim.cli.kfac_spectrum", lambda *a, **k: pytest.fail("computed"))
    (tmp_path / "a-file").touch()
    argv = ["fim", command, "--model", "tinyfim_nets:tiny", "--input-shape", "2,5,5",
            "--classes", "3", "--batch-size", "8", option, str(tmp_path / name)]
    argv += ["--activation", "relu(x)"] if command == "spectrum" else [
        "relu(x)", "--store", str(tmp_path / "s.sqlite")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("act: error: cannot ") and err.count("\n") == 1


def test_a_second_batch_on_the_same_store_is_refused(tiny, tmp_path, capsys):
    from actcore.lock import exclusive

    store = tmp_path / "s.sqlite"
    with exclusive(store, "the spectrum store"):
        status = main(["fim", "batch", "relu(x)", "--model", "tinyfim_nets:tiny", "--input-shape",
                       "2,5,5", "--classes", "3", "--batch-size", "8", "--store", str(store)])
    assert status == 2 and "is in use by pid" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--activation", "relu(x", "--input-shape", "2,5,5", "--classes", "3"], "position"),
    (["--activation", "relu(x)"], "--input-shape and --classes"),
    (["--activation", "relu(x)", "--input-shape", "2,5,5", "--classes", "3",
      "--device", "bogus"], "unknown device 'bogus'"),
    (["--activation", "relu(x)", "--input-shape", "2,5,5", "--classes", "3",
      "--fisher", "empirical"], "needs true labels"),
])
def test_user_errors_are_one_line(tiny, capsys, args, message):
    assert main(["fim", "spectrum", "--model", "tinyfim_nets:tiny", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_without_actbench_the_zoo_error_says_install_actbench(capsys):
    """actfim alone (as in its own nox session), or with actbench disabled."""
    installed = {ep.name for ep in entry_points(group=plugins.ENTRY_POINT_GROUP)}
    try:
        plugins.disable(*({"actbench"} & installed))
        status = main(["fim", "spectrum", "--model", "allcnnc", "--activation", "relu(x)",
                       "--input-shape", "3,8,8", "--classes", "10"])
    finally:
        plugins.enable_all()
    err = capsys.readouterr().err
    assert status == 2 and "./dev install actbench" in err


def test_random_inputs_are_seeded(tiny, capsys):
    base = ["fim", "spectrum", "--model", "tinyfim_nets:tiny", "--activation", "tanh(x)",
            "--input-shape", "2,5,5", "--classes", "3", "--batch-size", "8"]
    assert main(base) == 0
    first = capsys.readouterr().out.splitlines()[2:]
    assert len(first) >= 3 and "Fisher CDF feature length" in first[-1]  # a spectrum
    assert main(base) == 0
    assert capsys.readouterr().out.splitlines()[2:] == first
    torch.manual_seed(123)  # global state must not matter
    assert main(base) == 0
    assert capsys.readouterr().out.splitlines()[2:] == first


def test_any_model_from_the_users_own_code(tmp_path, monkeypatch, capsys):
    """--model package.module:callable, from the working directory; its ReLUs take the
    --activation, or it keeps its own; --mode eval leaves BatchNorm's statistics alone."""
    (tmp_path / "my_nets.py").write_text(
        "from torch import nn\n"
        "def small(num_classes):\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),\n"
        "                         nn.Flatten(), nn.Linear(4 * 6 * 6, num_classes))\n"
        "def not_a_model():\n"
        "    return 42\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    base = ["fim", "spectrum", "--model", "my_nets:small", "--input-shape", "3,8,8",
            "--classes", "5", "--batch-size", "16"]
    assert main(base) == 0
    out = capsys.readouterr().out
    assert "my_nets:small with its own activations: mc Fisher, train mode" in out
    assert "not in the spectrum: 1 BatchNorm2d module(s), 8 parameters (1)" in out
    assert main([*base, "--activation", "silu", "--mode", "eval"]) == 0
    assert "with swish(x): mc Fisher, eval mode" in capsys.readouterr().out
    for model, message in [("my_nets:not_a_model", "returned int, not a torch.nn.Module"),
                           ("my_nets:nothing", "has no callable 'nothing'"),
                           ("no_such_module:f", "cannot import 'no_such_module'"),
                           ("timm:nope", "timm")]:
        assert main(["fim", "spectrum", "--model", model, "--input-shape", "3,8,8",
                     "--classes", "5"]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    assert main([*base, "--activation", "tanh", "--replace", "gelu"]) == 2
    assert "has no activation of the kinds ['gelu']" in capsys.readouterr().err
