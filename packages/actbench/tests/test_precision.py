"""Training in bfloat16 (``Recipe.precision``): forward passes under torch's autocast,
weights, optimiser, activation functions and losses in float32; float32 runs, their
results files and their checkpoint names as before the option existed."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import actbench.cli
from actbench.checkpoints import checkpoint_name
from actbench.recipes import Recipe
from actbench.tasks import get_task
from actbench.train import train
from actcore.cli import main


@pytest.fixture
def linear_outputs():
    """(training mode, dtype) of every ``nn.Linear`` output while the test runs."""
    seen: list[tuple[bool, torch.dtype]] = []

    def record(module, inputs, output):
        if isinstance(module, nn.Linear):
            seen.append((module.training, output.dtype))

    handle = torch.nn.modules.module.register_module_forward_hook(record)
    yield seen
    handle.remove()


@pytest.mark.parametrize("precision, dtype", [("float32", torch.float32),
                                               ("bfloat16", torch.bfloat16)])
def test_training_and_evaluation_run_in_the_recipes_precision(linear_outputs, precision,
                                                              dtype):
    result = train("mlp-digits", "relu(x)", 0, epochs=1, precision=precision)
    assert result.status == "ok" and result.recipe["precision"] == precision
    modes = {training for training, _ in linear_outputs}
    assert modes == {True, False}  # trained and measured
    assert {d for _, d in linear_outputs} == {dtype}


def test_a_bfloat16_run_learns_and_keeps_float32_weights():
    """Chance is 10% and float32 reaches about 97% on digits' validation split; bfloat16's
    8-bit products cost a point at most, far inside the margin."""
    result = train("mlp-digits", "relu(x)", 0, precision="bfloat16")
    assert result.status == "ok" and result.val_accuracy > 0.9
    assert all(isinstance(v, float) for values in result.learned.values()
               for vs in values.values() for v in vs)  # fmt: skip


def test_an_activation_without_low_precision_kernels_trains_in_bfloat16():
    """bessel_i1e's gradient has no bfloat16 kernel: the activation runs in float32."""
    result = train("mlp-digits", "add(bessel_i1e(x),tanh(x))", 0, epochs=2,
                   precision="bfloat16")
    assert result.status == "ok", result.reason


def test_an_unknown_precision_is_refused_by_name():
    with pytest.raises(Exception, match="precision"):
        train("mlp-digits", "relu(x)", 0, precision="float16")


def test_float32_checkpoints_keep_the_names_they_had_before_precision_existed():
    """Names computed by act before the field was added (runs in flight resume)."""
    lenet = get_task("lenet5-fashion-mnist").recipe
    allconv = get_task("allconv-fashion-mnist").recipe
    assert checkpoint_name("lenet5-fashion-mnist", lenet, ["relu(x)"], 0) == \
        "seed0-12155d1a77a194cf5bbf.pt"
    assert checkpoint_name("allconv-fashion-mnist", allconv, ["relu(x)", "tanh(x)"], 2) == \
        "seed2-de3968b6493c3e6fa9e3.pt"
    bf16 = lenet.model_copy(update={"precision": "bfloat16"})
    assert checkpoint_name("lenet5-fashion-mnist", bf16, ["relu(x)"], 0) != \
        "seed0-12155d1a77a194cf5bbf.pt"


def test_runs_saved_before_precision_existed_are_float32_runs(tmp_path, capsys, monkeypatch):
    recipe = get_task("mlp-digits").recipe.model_dump(mode="json")
    del recipe["precision"]
    recipe["epochs"] = 2
    record = dict(task="mlp-digits", activation="relu(x)", seed=0, status="ok",
                  train_accuracy=0.5, val_accuracy=0.5, test_accuracy=0.5, train_loss=1.0,
                  val_loss=1.0, test_loss=1.0, runtime_s=1.0, epochs=2, recipe=recipe)
    results = tmp_path / "old.jsonl"
    results.write_text(json.dumps(record) + "\n")
    argv = ["bench", "compare", "-t", "mlp-digits", "-a", "relu", "--epochs", "2",
            "--results", str(results)]  # fmt: skip
    assert main([*argv, "--set", "precision=bfloat16"]) == 2
    assert ("runs trained with precision='float32' (relu(x), seed 0), not the "
            "precision='bfloat16'") in capsys.readouterr().err

    def no_training(*args, **kwargs):
        raise AssertionError("the saved float32 run must be reused")

    monkeypatch.setattr(actbench.cli, "train_many", no_training)
    assert main(argv) == 0


def test_the_default_recipe_is_float32():
    assert Recipe(optimizer="adam", lr=1e-3, epochs=1, batch_size=8).precision == "float32"
