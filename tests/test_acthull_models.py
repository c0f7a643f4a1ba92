"""acthull on actbench's model zoo: replace, train, record, inspect, freeze, export."""

from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("actbench")
import acthull
from actbench.hookspecs import MODELS
from actcore.cli import main
from actcore.plugins import registry


def test_lenet5_relu_to_per_channel_hulls_end_to_end(tmp_path):
    torch.manual_seed(0)
    model = registry(MODELS).get("lenet5").build("relu", (1, 28, 28), 10)
    spec = acthull.HullSpec(kind="affine", bases=["identity", "relu", "tanh"],
                            granularity="channel")
    replaced = acthull.replace_activations(model, spec, example_input=torch.zeros(1, 1, 28, 28))
    assert len(replaced) == 3
    assert [h.channels for h in acthull.activation_layers(model).values()] == [20, 50, 500]

    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    recorder = acthull.CoefficientRecorder(model)
    recorder.attach(opt)
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    assert all(len(t.steps) == 4 for t in recorder.trajectories.layers.values())

    acthull.save_checkpoint(tmp_path / "lenet.pt", model)
    assert main(["hull", "show", str(tmp_path / "lenet.pt"), "-o", str(tmp_path / "f.png")]) == 0
    assert (tmp_path / "f.png").stat().st_size > 0

    frozen = acthull.freeze(model).eval()
    model.eval()
    program = torch.export.export(frozen, (x,))
    assert torch.equal(program.module()(x), frozen(x))
    # the trained hulls ran the native kernel: equal to float rounding
    torch.testing.assert_close(program.module()(x), model(x), rtol=1e-5, atol=1e-5)


def test_torchvision_resnet18_layers_or_call_sites(tmp_path):
    """resnet18 shares each block's ReLU between two calls: 9 layers by module, 17 by
    call site; both run and save a coefficients-only checkpoint of a few kB."""
    torchvision = pytest.importorskip("torchvision")
    spec = "convex_n(identity(x),relu(x))"
    model = torchvision.models.resnet18(num_classes=10)
    assert len(acthull.replace_activations(model, spec)) == 9
    traced = acthull.replace_call_sites(torchvision.models.resnet18(num_classes=10), spec)
    assert len(acthull.coefficients(traced)) == 17
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == traced(x).shape == (2, 10)
    path = acthull.save_checkpoint(tmp_path / "hulls.pt", traced)
    assert path.stat().st_size < 64_000
    mobilenet = torchvision.models.mobilenet_v3_small(num_classes=10)
    replaced = acthull.replace_activations(mobilenet, spec, types="hardswish")
    assert all(isinstance(m, nn.Hardswish) for m in replaced.values()) and len(replaced) > 5
