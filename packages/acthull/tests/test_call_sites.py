"""What module swapping cannot see (functional calls, shared modules, timm's classes) is
reported, or reached through torch.fx; coefficient keys are one scheme."""

import types
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from actcore import ActError, to_module
from acthull import (
    ConvexHull,
    HullSpec,
    UnreplacedActivationWarning,
    coefficients,
    replace_activations,
    replace_call_sites,
)

SPEC = HullSpec(kind="convex", bases=["identity", "relu"])


class Block(nn.Module):
    """A ResNet-style block: one ReLU module called twice, plus functional calls."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        y = self.relu(self.a(x))
        y = F.leaky_relu(self.b(y), 0.2) + x.relu()
        return self.relu(y) + torch.tanh(x)


def test_functional_calls_left_alone_are_counted_in_a_warning():
    model = Block()
    with pytest.warns(UnreplacedActivationWarning, match=r"1 functional activation call") as w:
        replace_activations(model, SPEC)
    assert "relu" in str(w[0].message) and "replace_call_sites" in str(w[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no functional call of the kinds asked for
        replace_activations(Block(), SPEC, types=("leaky_relu", "relu"), pattern="relu")


def test_every_call_site_gets_its_own_hull_through_fx():
    torch.manual_seed(0)
    model = Block()
    x = torch.randn(5, 4)
    expected = model(x.clone())
    traced = replace_call_sites(model, SPEC, types=("relu", "leaky_relu", "tanh"))
    assert isinstance(model.relu, nn.ReLU)  # the original model is untouched
    hulls = coefficients(traced)
    assert sorted(hulls) == ["leaky_relu", "relu", "relu_1", "relu_2", "tanh"]
    # a convex hull of identity and relu with coefficients (1, 0) is the identity: the
    # traced model with such hulls computes the block with every activation removed
    with torch.no_grad():
        for hull in (m for m in traced.modules() if isinstance(m, ConvexHull)):
            hull.raw.copy_(torch.tensor([30.0, -30.0]))
        identity_everywhere = model.b(model.a(x)) + 2 * x
        torch.testing.assert_close(traced(x), identity_everywhere, rtol=1e-5, atol=1e-5)
    assert not torch.equal(expected, traced(x))


def test_call_sites_keep_outputs_when_the_spec_is_the_same_function():
    model = Block()
    x = torch.randn(3, 4)
    traced = replace_call_sites(model, "relu", types="relu")
    assert sum(isinstance(m, type(to_module("relu"))) for m in traced.modules()) == 3
    torch.testing.assert_close(traced(x), model(x))


def test_untraceable_models_get_a_clear_error():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.relu(x) if x.sum() > 0 else x

    with pytest.raises(ActError, match=r"cannot be traced with torch\.fx"):
        replace_call_sites(Branchy(), SPEC)


def test_timm_activation_classes_are_matched_by_kind(monkeypatch):
    """timm's GELU and Swish do not subclass torch's; they are found by kind."""
    layers = types.ModuleType("timm.layers.activations")
    for name in ("GELU", "Swish"):
        cls = type(name, (nn.Module,), {"forward": lambda self, x: x * torch.sigmoid(x)})
        cls.__module__ = "timm.layers.activations"
        setattr(layers, name, cls)
    model = nn.Sequential(nn.Linear(2, 2), layers.GELU(), nn.Linear(2, 2), layers.Swish())
    with pytest.raises(ActError, match=r"it has gelu x1, silu x1"):
        replace_activations(model, SPEC)
    assert list(replace_activations(model, SPEC, types=("gelu", "silu"))) == ["1", "3"]


@pytest.mark.filterwarnings("ignore::acthull.UnreplacedActivationWarning")
def test_coefficient_keys_do_not_depend_on_how_the_hull_was_given():
    a, b = Block(), Block()
    replace_activations(a, SPEC)
    replace_activations(b, "convex_n(identity(x),relu(x))")
    assert list(coefficients(a)) == list(coefficients(b)) == ["relu"]
