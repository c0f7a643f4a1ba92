"""Silent layers: no activation function reaches them at initialisation (a zero-initialised
scale after a residual branch), told apart from a function that silences layers itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import actfim.silent
from actcore import to_module
from actcore.stacked import StackedActivation
from actfim import cdf_layout, fisher_cdf, kfac_spectrum
from actfim.problems import layer_problem
from actfim.spectrum import stacked_spectra


class Residual(nn.Module):
    """conv -> act -> (branch: conv -> act -> conv -> BatchNorm) + skip -> act -> linear;
    the branch's BatchNorm weight starts at ``scale`` (0: timm's ``zero_init_last``)."""

    def __init__(self, activation: str, scale: float = 0.0):
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 3, padding=1)
        self.act0, self.act1, self.act2 = (to_module(activation) for _ in range(3))
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 1)
        self.bn = nn.BatchNorm2d(4)
        nn.init.constant_(self.bn.weight, scale)
        self.head = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        h = self.act0(self.stem(x))
        h = h + self.bn(self.conv2(self.act1(self.conv1(h))))
        return self.head(self.act2(h).flatten(1))


def build(activation: str, scale: float = 0.0) -> nn.Module:
    torch.manual_seed(0)
    return Residual(activation, scale)


X = torch.randn(16, 2, 6, 6, generator=torch.Generator().manual_seed(1))


def test_a_zero_initialised_branch_is_named_and_left_out():
    spectra = {f: kfac_spectrum(build(f), X) for f in ("relu(x)", "tanh(x)", "swish(x)")}
    for f, spectrum in spectra.items():
        assert spectrum.valid, (f, spectrum.reason)
        assert [layer.name for layer in spectrum.layers] == ["stem", "head"]
        assert [(s.name, s.num_weights) for s in spectrum.silent] == [("conv1", 148),
                                                                    ("conv2", 20)]
        assert all("no gradient reaches it" in s.why for s in spectrum.silent)
    # the features have one length for the model, whatever the function
    lengths = {fisher_cdf(s).size for s in spectra.values()}
    assert lengths == {cdf_layout([2 * 4 * 9 + 4, 4 * 36 * 3 + 3]).length}  # stem, head


def test_a_function_that_silences_layers_itself_stays_invalid():
    for f in ("zero(x)", "one(x)"):
        spectrum = kfac_spectrum(build(f), X)
        assert not spectrum.valid
        assert "layer 'stem': factor" in spectrum.reason  # the function's doing: named
        assert "conv1" not in spectrum.reason  # the architecture's: not held against it
        assert [s.name for s in spectrum.silent] == ["conv1", "conv2"]


def test_without_a_zero_factor_no_reference_pass_runs(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the reference pass ran")

    monkeypatch.setattr(actfim.silent, "zero_factors", fail)
    spectrum = kfac_spectrum(build("relu(x)", scale=1.0), X)
    assert spectrum.valid and spectrum.silent == []
    assert [layer.name for layer in spectrum.layers] == ["stem", "conv1", "conv2", "head"]


def test_no_input_with_any_function_is_silent_but_f0_nonzero_is_not():
    """A layer fed by zero weights without bias: its input is f(0) everywhere, so zero
    for relu but not for sigmoid; a layer behind a zero scale gets no input at all."""

    class Fed(nn.Module):
        def __init__(self, activation, gate):
            super().__init__()
            self.first = nn.Linear(4, 6, bias=False)
            nn.init.zeros_(self.first.weight)
            self.act = to_module(activation)
            self.second = nn.Linear(6, 5, bias=False)
            self.gate = gate
            self.out = nn.Linear(4, 3)

        def forward(self, x):
            return self.out(x) + self.gate * self.second(self.act(self.first(x))).sum(1,
                                                                                     True)

    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    relu = kfac_spectrum(Fed("relu(x)", 1.0), x)
    assert not relu.valid and "layer 'second': factor A (is zero)" in relu.reason
    assert relu.silent == []  # sigmoid would give it input: not silent
    torch.manual_seed(0)
    assert kfac_spectrum(Fed("sigmoid(x)", 1.0), x).valid


def test_stacked_functions_get_what_they_get_alone():
    functions = ["relu(x)", "tanh(x)", "zero(x)"]
    model = build("relu(x)")
    stacked_model = Residual("relu(x)")
    stacked_model.load_state_dict(model.state_dict())
    for name in ("act0", "act1", "act2"):
        setattr(stacked_model, name, StackedActivation(functions))
    got = stacked_spectra(stacked_model, X, stacks=3, mode="eval")
    assert [s.name for s in got.silent] == ["conv1", "conv2"]
    for s, f in enumerate(functions):
        alone_model = build(f)
        alone_model.load_state_dict(model.state_dict())
        alone = kfac_spectrum(alone_model, X, mode="eval")
        mine = got.spectrum(s)
        assert (mine.valid, [x.name for x in mine.layers], mine.silent) == (
            alone.valid, [x.name for x in alone.layers], alone.silent)
        if alone.valid:
            np.testing.assert_allclose(got.cdfs()[s], fisher_cdf(alone), atol=1e-6)
        else:
            assert mine.reason == alone.reason


@pytest.mark.parametrize("shift", [0.0, 1.0])
def test_the_reference_model_keeps_the_weights(shift):
    model = build("swish(x)")
    reference = actfim.silent.reference_model(model, shift)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                  reference.state_dict().values(),
                                                  strict=True))
    h = torch.randn(3, 4, 2, 2)
    assert torch.equal(reference.act1(h), h + shift)
    assert model.act1 is not reference.act1 and not isinstance(model.act1, type(reference.act1))


def _mlp(activation: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 16), activation, nn.Linear(16, 16), nn.Tanh(),
                         nn.Linear(16, 3))  # fmt: skip


XS = torch.randn(32, 10, generator=torch.Generator().manual_seed(2))


class FunctionalRelu(nn.Module):
    """An activation as a functional call, which no reference can swap."""

    def forward(self, x):
        return torch.nn.functional.relu(x - 100)


@pytest.mark.parametrize("activation", [nn.Hardshrink(100), nn.Threshold(100.0, 0.0),
                                        FunctionalRelu()], ids=["hardshrink", "threshold",
                                                                "functional"])  # fmt: skip
def test_an_activation_act_has_no_module_kind_for_is_not_excused(activation):
    """These kill layer 0's gradient (and layer 2's input): the activation's doing, as
    with zero(x). The reference computes them as the identity too (a module of a kind act
    does not swap, or a functional call), so it does not excuse them."""
    assert not kfac_spectrum(_mlp(to_module("zero(x)")), XS).valid
    spectrum = kfac_spectrum(_mlp(activation), XS)
    assert not spectrum.valid and spectrum.silent == []
    assert spectrum.reason.startswith("layer '0': factor G (is zero)")


class CallsRelu(Residual):
    """The zero-initialised branch of :class:`Residual`, with a functional ``F.relu`` in
    the architecture (as timm's MobileViTv2 has in its attention)."""

    def forward(self, x):
        h = self.act0(self.stem(x))
        h = h + self.bn(self.conv2(self.act1(self.conv1(h))))
        return self.head(torch.nn.functional.relu(self.act2(h)).flatten(1))


@pytest.mark.parametrize("activation", ["relu(x)", "tanh(x)"])
def test_a_functional_call_in_the_architecture_leaves_the_silent_branch_silent(activation):
    torch.manual_seed(0)
    spectrum = kfac_spectrum(CallsRelu(activation), X)
    assert spectrum.valid, spectrum.reason
    assert [s.name for s in spectrum.silent] == ["conv1", "conv2"]


def test_a_saturating_reference_never_hides_a_healthy_layer():
    """A dead ReLU layer (bias -100): with identity activations the logits are so large
    that the softmax's gradient underflows, so the reference has G = 0 everywhere. Only
    layers whose factors are zero in the real model too may be left out."""
    model = _mlp(nn.ReLU())
    with torch.no_grad():
        model[0].bias.fill_(-100.0)
        model[2].weight.mul_(30.0)
        model[4].weight.mul_(30.0)
    reference = actfim.silent.reference_model(model)
    logits = reference(XS)
    assert logits.abs().max() > 80  # the reference saturates, as described
    spectrum = kfac_spectrum(model, XS)
    # the dead layer (no gradient through ReLU at -100) is the function's failure, named;
    # the healthy layers are kept, and the reference is said to decide nothing
    assert not spectrum.valid and spectrum.silent == []
    assert [layer.name for layer in spectrum.layers] == ["0", "2", "4"]
    assert spectrum.reason.startswith("layer '0': factor G (is zero); ")
    assert "has zero factors where this model has none (layers '2', '4'" in spectrum.reason


class Gated(nn.Module):
    """A head, and a second head whose input is multiplied by zero: no activation gives
    that layer input (A), while the first head beside it is healthy."""

    def __init__(self, activation: str):
        super().__init__()
        self.first = nn.Linear(4, 6)
        self.act = to_module(activation)
        self.head = nn.Linear(6, 3)
        self.dead = nn.Linear(6, 3, bias=False)

    def forward(self, x):
        h = self.act(self.first(x))
        return self.head(h) + self.dead(h * 0.0)


@pytest.mark.parametrize("activation", ["relu(x)", "sigmoid(x)", "add(x,one(x))"])
def test_a_layer_without_input_for_any_function_is_silent_by_its_a_factor(activation):
    torch.manual_seed(0)
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    spectrum = kfac_spectrum(Gated(activation), x)
    assert spectrum.valid, spectrum.reason
    assert [(s.name, s.why) for s in spectrum.silent] == [("dead", actfim.silent.WHY["A"])]
    assert [layer.name for layer in spectrum.layers] == ["first", "head"]  # kept beside it


CONV2_ZERO = layer_problem("conv2", None, "is zero", True)


def test_a_non_finite_factor_is_never_forgiven_by_the_reference():
    def problems(conv1, conv2=CONV2_ZERO):
        return {"stem": None, "conv1": conv1, "conv2": conv2, "head": None}

    model = build("relu(x)")  # conv1 and conv2 get no gradient with any function
    zero = layer_problem("conv1", None, "is zero", True)
    assert zero.kind == "zero" and str(zero) == "layer 'conv1': factor G (is zero)"
    silence = actfim.silent.silent_layers([problems(zero)], model, X, None)
    assert silence.zero == {"conv1": "G", "conv2": "G"}
    broken = layer_problem("conv1", "is zero", "is not finite", True)
    assert broken.kind == "not_finite" and broken.zero == {"A"}
    silence = actfim.silent.silent_layers([problems(broken)], model, X, None)
    assert "conv1" not in silence.zero
    # a layer zero for one function of a stack and not for another is never left out
    silence = actfim.silent.silent_layers([problems(zero), problems(None, None)], model, X,
                                          None)  # fmt: skip
    assert silence.zero == {}
