"""StackedActivation: function k on block k, as the function's own module computes it."""

import pytest
import torch

from actcore import Space, to_module
from actcore.errors import ActError
from actcore.stacked import StackedActivation

MIXED = [
    "relu(x)", "x", "add(tanh(x),abs(x))", "max_n(sigmoid(x),softsign(x),elu(x))",
    "exp(neg(square(x)))", "mul(swish(abs(x)),erf(x))", "tanh(x)", "one(x)",
    "sub(cosh(x),x)",
]


def _blocks(names, x, normalize=False):
    outs, grads = [], []
    for k, name in enumerate(names):
        xi = x[k].detach().clone().requires_grad_(True)
        yi = to_module(name, normalize=normalize)(xi)
        if yi.requires_grad:
            yi.backward(torch.cos(xi))
        outs.append(yi.detach())
        grads.append(xi.grad if xi.grad is not None else torch.zeros_like(xi))
    return torch.stack(outs), torch.stack(grads)


@pytest.mark.parametrize("names", [
    MIXED,
    [str(e) for e in Space("unary(unary(x))", operators=["tanh", "abs", "exp", "erf"])],
    [str(e) for e in Space("n-ary(unary(x),unary(x),unary(x))",
                           operators=["max_n", "sum_n", "relu", "sigmoid"])][:40],
], ids=["mixed shapes", "one shape", "n-ary"])
def test_each_block_gets_its_own_function(names):
    torch.manual_seed(0)
    x = torch.randn(len(names), 7, 3, dtype=torch.float64, requires_grad=True)
    y = StackedActivation(names)(x.reshape(-1, 3))
    y.backward(torch.cos(x.reshape(-1, 3)))
    want, grads = _blocks(names, x)
    torch.testing.assert_close(y.detach().reshape(x.shape), want, rtol=1e-12, atol=0)
    torch.testing.assert_close(x.grad, grads, rtol=1e-12, atol=1e-300)


def test_normalized_blocks_match_normalized_modules():
    names = ["relu(x)", "tanh(x)", "add(abs(x),x)"]
    x = torch.randn(3, 50, dtype=torch.float64)
    y = StackedActivation(names, normalize=True)(x.reshape(-1))
    want, _ = _blocks(names, x, normalize=True)
    torch.testing.assert_close(y.reshape(x.shape), want, rtol=1e-12, atol=1e-15)


def test_bad_input_is_named():
    with pytest.raises(ActError, match="at least one function"):
        StackedActivation([])
    with pytest.raises(ActError, match="does not split into 2 equal blocks"):
        StackedActivation(["relu(x)", "tanh(x)"])(torch.randn(5, 3))


def test_learnable_operators_are_refused(learnable_operator):
    with pytest.raises(ActError, match="'scaled' is learnable"):
        StackedActivation(["relu(x)", "scaled(tanh(x))"])
