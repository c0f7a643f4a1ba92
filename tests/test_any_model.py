"""act fim spectrum on a torchvision model by name, as a researcher would first try it."""

from __future__ import annotations

import copy

import pytest
import torch

from actcore.cli import main

torchvision = pytest.importorskip("torchvision")


def test_fim_spectrum_on_torchvision_resnet18_with_a_swapped_activation(tmp_path, capsys):
    png = tmp_path / "r18.png"
    assert main(["fim", "spectrum", "--model", "resnet18", "--activation", "swish",
                 "--input-shape", "3,32,32", "--classes", "10", "--batch-size", "8",
                 "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "resnet18 with swish(x): mc Fisher, train mode, batch 8" in out
    assert "layer4.1.conv2" in out and "fc " in out
    assert "not in the spectrum: 20 BatchNorm2d module(s), 9,600 parameters" in out
    assert png.stat().st_size > 20_000
    assert main(["fim", "spectrum", "--model", "resnet19", "--input-shape", "3,32,32",
                 "--classes", "10"]) == 2
    assert "did you mean 'resnet18'" in capsys.readouterr().err


def test_kfac_spectrum_leaves_resnet18_as_it_was():
    from actfim import kfac_spectrum

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(32, 3, 32, 32)
    train = kfac_spectrum(model, x, mode="train")
    assert model.training and model.bn1.num_batches_tracked.item() == 0
    model.eval()
    evaluated = kfac_spectrum(model, x, mode="eval")
    assert not model.training
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert train.valid and evaluated.valid, (train.reason, evaluated.reason)
    # At initialisation BatchNorm's running statistics are (0, 1) and its affine map the
    # identity, so in eval mode it only divides by sqrt(1 + eps): the same spectrum as the
    # network with every BatchNorm taken out (exact Fisher over labels: no sampling).
    plain = copy.deepcopy(model)
    for name, module in list(plain.named_modules()):
        if isinstance(module, torch.nn.BatchNorm2d):
            parent, _, attr = name.rpartition(".")
            setattr(plain.get_submodule(parent), attr, torch.nn.Identity())
    want = kfac_spectrum(plain, x, mode="eval", fisher="type2")
    got = kfac_spectrum(model, x, mode="eval", fisher="type2")
    for a, b in zip(got.layers, want.layers, strict=True):
        assert a.name == b.name
        top = float(b.log_eigenvalues.max())
        assert abs(float(a.log_eigenvalues.max()) - top) < 1e-3, a.name
    # in train mode BatchNorm normalises by the batch instead: the spectra move
    medians = [(a.log_eigenvalues.median(), b.log_eigenvalues.median())
               for a, b in zip(train.layers, evaluated.layers, strict=True)]
    assert max(abs(float(a - b)) for a, b in medians) > 1.0
