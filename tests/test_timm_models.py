"""The seeds' networks as their users build them, with timm and torchvision: Fisher
spectra stay valid where the architecture silences layers at initialisation, and the
timm-backed tasks run. (The integration session installs timm.)"""

from __future__ import annotations

import pytest
import torch
import torchvision

from actbench import train
from actbench.fisher import fisher_batch, model_factory
from actbench.testing import write_image_tree
from actcore import to_module
from actcore.cli import main
from actfim import kfac_spectrum

timm = pytest.importorskip("timm")  # installed by the integration session

SILENT = ["stages.1.1.conv1_1x1.conv", "stages.1.1.conv2_kxk.conv", "stages.1.1.conv3_1x1.conv"]


#: the four-node search's best function on mlp-digits (README), beside ReLU and Swish
SEARCHED = "selu(selu(tanh(erf(x))))"


@pytest.mark.parametrize("activation", ["relu", "swish", SEARCHED])
def test_mobilevitv2_spectrum_is_valid_and_names_its_silent_branch(activation, capsys):
    """timm zero-initialises the last BatchNorm of one residual branch: its three
    convolutions get no gradient with any activation, and are named, not held against
    the function."""
    assert main(["fim", "spectrum", "--model", "timm:mobilevitv2_050", "--input-shape",
                 "3,64,64", "--classes", "10", "--batch-size", "8", "--activation", activation,
                 "--replace", "silu"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "INVALID" not in out and "Fisher CDF feature length: 10778" in out
    assert "silent at initialisation, left out of the spectrum and its features: 3 layer(s)" in out
    for name in SILENT:
        assert f"  {name} (Conv2d" in out and "no gradient reaches it" in out


def test_a_function_that_silences_mobilevitv2_is_still_invalid(capsys):
    assert main(["fim", "spectrum", "--model", "timm:mobilevitv2_050", "--input-shape",
                 "3,64,64", "--classes", "10", "--batch-size", "8", "--activation", "zero",
                 "--replace", "silu"]) == 1  # fmt: skip
    assert "INVALID spectrum: layer 'stem.conv': factor G (is zero)" in capsys.readouterr().out


@pytest.mark.parametrize("activation", ["relu", "swish", SEARCHED])
def test_coatnet_spectrum_is_valid(activation, capsys):
    assert main(["fim", "spectrum", "--model", "timm:coatnet_nano_rw_224", "--input-shape",
                 "3,64,64", "--classes", "10", "--batch-size", "4", "--activation", activation,
                 "--replace", "gelu"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "INVALID" not in out and "Fisher CDF feature length" in out


def test_torchvision_resnet50_with_zero_initialised_residuals():
    """``zero_init_residual=True`` zeroes every bottleneck's last BatchNorm: the 48
    convolutions inside the 16 residual branches are silent, the stem, the 4 projections
    and the classifier remain."""
    torch.manual_seed(0)
    model = torchvision.models.resnet50(num_classes=10, zero_init_residual=True)
    spectrum = kfac_spectrum(model, torch.randn(4, 3, 32, 32))
    assert spectrum.valid, spectrum.reason
    assert len(spectrum.silent) == 48
    assert {s.name.rsplit(".", 1)[-1] for s in spectrum.silent} == {"conv1", "conv2", "conv3"}
    assert [layer.name for layer in spectrum.layers] == [
        "conv1", *(f"layer{i}.0.downsample.0" for i in range(1, 5)), "fc"]


@pytest.mark.parametrize(("task", "dataset", "folder", "classes"), [
    ("mobilevitv2-imagenette", "imagenette", "imagenette2-320", 10),
    ("coatnet-imagenette", "imagenette", "imagenette2-320", 10),
    ("mobilevitv2-imagenet", "imagenet-224", "imagenet", 1000),
])
def test_timm_tasks_train_a_step_and_have_a_valid_spectrum(task, dataset, folder, classes,
                                                           tmp_path):
    write_image_tree(tmp_path, folder, classes=classes, per_class=10, filled=2, size=8)
    result = train(task, "relu", 0, root=tmp_path, epochs=1, train_images=4, batch_size=4,
                   eval_batch_size=64, workers=0)
    assert result.status == "ok", result.reason
    inputs, _ = fisher_batch(dataset, 2, 0, str(tmp_path))
    spectrum = kfac_spectrum(model_factory(task)(to_module("relu(x)")), inputs)
    assert spectrum.valid, spectrum.reason
    assert spectrum.layers[-1].g_size == classes
