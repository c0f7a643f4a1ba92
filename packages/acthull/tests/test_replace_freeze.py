
import numpy as np
import pytest
import torch
from torch import nn

from actcore import ActError, ParseError, to_module
from acthull import (
    AffineHull,
    ConvexHull,
    FrozenHull,
    HullSpec,
    freeze,
    replace_activations,
)

SPEC = HullSpec(kind="affine", bases=["identity", "relu", "tanh"])


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.GELU())
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(6 * 4 * 4, 5), nn.ReLU(),
                                  nn.Linear(5, 3), nn.Sigmoid())

    def forward(self, x):
        return self.head(self.features(x))


def _randomise(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("raw"):
                p.normal_()


def test_replaces_hidden_activations_with_independent_hulls():
    model = Net()
    replaced = replace_activations(model, SPEC, types="hidden")
    assert list(replaced) == ["features.1", "features.3", "head.2"]
    assert isinstance(replaced["features.3"], nn.GELU)
    hulls = [model.features[1], model.features[3], model.head[2]]
    assert all(isinstance(h, AffineHull) for h in hulls)
    assert len({id(h.raw) for h in hulls}) == 3
    assert isinstance(model.head[4], nn.Sigmoid)  # gates are not hidden activations
    x = torch.randn(2, 1, 8, 8)
    model(x).sum().backward()
    assert all(h.raw.grad is not None for h in hulls)


def test_by_type_pattern_and_expression():
    model = Net()
    replaced = replace_activations(model, "convex_n(identity(x),relu(x))", types=(nn.ReLU,),
                                   pattern="features.*")
    assert list(replaced) == ["features.1"]
    assert str(model.features[1]) == "convex_n(identity(x),relu(x))"
    assert isinstance(model.head[2], nn.ReLU)
    model2 = Net()
    replace_activations(model2, lambda: ConvexHull(["relu", "tanh"]), types=None, pattern="head.4")
    assert isinstance(model2.head[4], ConvexHull)
    replace_activations(model2, "elu", types=(nn.GELU,))
    assert str(model2.features[3]) == "elu(x)"


def test_the_default_replaces_relu_and_act_activations_only():
    model = Net()
    model.features[3] = to_module("swish(x)")
    replaced = replace_activations(model, SPEC)
    assert list(replaced) == ["features.1", "features.3", "head.2"]
    model = Net()
    assert list(replace_activations(model, SPEC)) == ["features.1", "head.2"]
    assert isinstance(model.features[3], nn.GELU) and isinstance(model.head[4], nn.Sigmoid)
    with pytest.raises(ActError, match="unknown activation kind 'rleu'; did you mean 'relu'"):
        replace_activations(Net(), SPEC, types=("rleu",))


def test_module_registered_twice_gets_two_independent_hulls():
    relu = nn.ReLU()
    model = nn.Sequential(nn.Linear(3, 3), relu, nn.Linear(3, 3), relu)
    replace_activations(model, SPEC)
    assert model[1] is not model[3] and model[1].raw is not model[3].raw


def test_per_channel_learns_channels_from_example_input():
    model = Net()
    model.train()
    spec = HullSpec(kind="convex", bases=["identity", "relu"], granularity="channel")
    replace_activations(model, spec, example_input=torch.zeros(1, 1, 8, 8), types="hidden")
    assert [model.features[1].channels, model.features[3].channels, model.head[2].channels] == [
        4, 6, 5
    ]
    assert model.training and model.features[0].training
    model(torch.randn(2, 1, 8, 8))


def test_replace_errors():
    found = r"no activation of Tanh found in Net \(it has relu x2, gelu x1, sigmoid x1\)"
    with pytest.raises(ActError, match=found):
        replace_activations(Net(), SPEC, types=(nn.Tanh,))
    with pytest.raises(ParseError):
        replace_activations(Net(), "convex_n(identity(x),rleu(x))")
    model = Net()
    with pytest.raises(ActError, match="example_input"):
        replace_activations(model, SPEC.model_copy(update={"granularity": "channel"}))
    assert isinstance(model.features[1], nn.ReLU)  # untouched after an error
    with pytest.raises(ActError, match="spec must be"):
        replace_activations(Net(), 42)
    model = Net()
    with pytest.raises(ActError, match=r"factory 'make' returned str, not a torch\.nn\.Module"):

        def make():
            return "relu"

        replace_activations(model, make)
    assert isinstance(model.features[1], nn.ReLU)
    with pytest.raises(ActError, match=r"cannot run example_input of shape \(1, 3, 8, 8\)"):
        replace_activations(model, SPEC.model_copy(update={"granularity": "channel"}),
                            example_input=torch.zeros(1, 3, 8, 8))
    assert isinstance(model.features[1], nn.ReLU)


def _frozen_model():
    torch.manual_seed(0)
    model = Net()
    replace_activations(model, SPEC.model_copy(update={"granularity": "channel"}),
                        example_input=torch.zeros(1, 1, 8, 8), types=(nn.ReLU,))
    replace_activations(model, "add(convex_n(identity(x),relu(x)),tanh(x))", types=(nn.GELU,))
    _randomise(model)
    return model, freeze(model)


def test_freeze_gives_identical_outputs_without_hull_parameters():
    model, frozen = _frozen_model()
    x = torch.randn(7, 1, 8, 8)
    torch.testing.assert_close(frozen(x), model(x), rtol=1e-6, atol=1e-6)
    assert not any(isinstance(m, (ConvexHull, AffineHull)) for m in frozen.modules())
    assert sum(isinstance(m, FrozenHull) for m in frozen.modules()) == 3
    assert all(not n.endswith("raw") for n, _ in frozen.named_parameters())
    assert isinstance(model.features[1], AffineHull)  # the original is untouched
    y = frozen(x.requires_grad_())
    assert "WeightedSum" not in y.grad_fn.name()
    torch.testing.assert_close(frozen.features[1].coefficients(),
                               model.features[1].coefficients().detach())


def test_frozen_model_exports_with_identical_outputs():
    model, frozen = _frozen_model()
    x = torch.randn(3, 1, 8, 8)
    program = torch.export.export(frozen.eval(), (x,))
    ops = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert not any("WeightedSum" in op or "autograd" in op for op in ops)
    x2 = torch.randn(3, 1, 8, 8)
    assert torch.equal(program.module()(x2), frozen(x2))
    torch.testing.assert_close(program.module()(x2), model(x2), rtol=1e-6, atol=1e-6)


def test_freeze_a_bare_hull_and_a_compiled_expression():
    hull = ConvexHull(["identity", "relu"])
    assert isinstance(freeze(hull), FrozenHull)
    act = to_module("affine_n(identity(x),convex_n(relu(x),tanh(x)))")
    _randomise(act)
    frozen = freeze(act)
    x = torch.randn(50)
    torch.testing.assert_close(frozen(x), act(x), rtol=1e-6, atol=1e-6)
    for hull in act.modules():  # bit for bit against the same ops (the eager kernel)
        if isinstance(hull, (ConvexHull, AffineHull)):
            hull.kernel = "eager"
    assert torch.equal(frozen(x), act(x))
    assert list(frozen.parameters()) == []


def test_frozen_model_exports_to_onnx_and_runs_the_same(tmp_path):
    """The exported graph, run by onnxruntime, gives the frozen model's outputs."""
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    model, frozen = _frozen_model()
    path = tmp_path / "m.onnx"
    torch.onnx.export(frozen.eval(), (torch.randn(2, 1, 8, 8),), str(path),
                      input_names=["x"], dynamic_shapes=({0: torch.export.Dim("batch")},))
    onnx.checker.check_model(onnx.load(str(path)))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 1, 8, 8)
    (got,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        want = model.eval()(x)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-5)
