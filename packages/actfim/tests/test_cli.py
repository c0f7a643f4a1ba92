"""``act fim`` with a model plugin registered at run time."""

from dataclasses import dataclass
from importlib.metadata import entry_points

import pytest
import torch
from torch import nn

import actcore
from actcore import plugins, to_module
from actcore.cli import main
from actcore.plugins import MODELS, registry


@dataclass
class TinyModel:
    name: str = "tinyfim"

    def build(self, activation, input_shape, num_classes):
        act = (lambda: to_module(activation)) if isinstance(activation, str) else activation
        return nn.Sequential(nn.Conv2d(input_shape[0], 4, 3, padding=1), act(), nn.Flatten(),
                             nn.Linear(4 * input_shape[1] * input_shape[2], num_classes))


class TinyPlugin:
    @actcore.hookimpl
    def act_models(self):
        return [TinyModel()]


@pytest.fixture
def tiny():
    plugins.register(TinyPlugin(), "tinyfim-test")
    yield
    plugins.unregister("tinyfim-test")


def test_spectrum_command_prints_a_table_and_plots(tiny, tmp_path, capsys):
    png = tmp_path / "spectrum.png"
    status = main(["fim", "spectrum", "--model", "tinyfim", "--activation", "tanh(x)",
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
    status = main(["fim", "spectrum", "--model", "tinyfim", "--activation", "zero(x)",
                   "--input-shape", "2,5,5", "--classes", "3", "--batch-size", "4"])
    assert status == 1 and "INVALID spectrum" in capsys.readouterr().out


def test_batch_command_resumes_and_exports(tiny, tmp_path, capsys):
    store, table = tmp_path / "s.sqlite", tmp_path / "t.json"
    args = ["--model", "tinyfim", "--input-shape",
            "2,5,5", "--classes", "3", "--batch-size", "8", "--store", str(store)]
    assert main(["fim", "batch", "relu(x)", "tanh(x)", *args]) == 0
    assert main(["fim", "batch", "relu(x)", "tanh(x)", "sigmoid(x)", *args,
                 "--export", str(table)]) == 0
    out = capsys.readouterr().out
    assert "3 functions, 3 valid" in out and table.exists()


def test_a_second_batch_on_the_same_store_is_refused(tiny, tmp_path, capsys):
    from actcore.lock import exclusive

    store = tmp_path / "s.sqlite"
    with exclusive(store, "the spectrum store"):
        status = main(["fim", "batch", "relu(x)", "--model", "tinyfim", "--input-shape",
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
    assert main(["fim", "spectrum", "--model", "tinyfim", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_without_any_model_plugin_the_error_says_install_actbench(capsys):
    installed = {ep.name for ep in entry_points(group=plugins.ENTRY_POINT_GROUP)}
    providers = {entry.plugin for entry in registry(MODELS).entries()} & installed
    try:
        plugins.disable(*providers)
        status = main(["fim", "spectrum", "--model", "allcnnc", "--activation", "relu(x)",
                       "--input-shape", "3,8,8", "--classes", "10"])
    finally:
        plugins.enable_all()
    err = capsys.readouterr().err
    assert status == 2 and "./dev install actbench" in err


def test_random_inputs_are_seeded(tiny, capsys):
    base = ["fim", "spectrum", "--model", "tinyfim", "--activation", "tanh(x)",
            "--input-shape", "2,5,5", "--classes", "3", "--batch-size", "8"]
    main(base)
    first = capsys.readouterr().out.splitlines()[2:]
    main(base)
    assert capsys.readouterr().out.splitlines()[2:] == first
    torch.manual_seed(123)  # global state must not matter
    main(base)
    assert capsys.readouterr().out.splitlines()[2:] == first
