import copy
import io
import pickle

import pytest
import torch
from torch import nn

from actcore import evaluate, to_module

NAME = "max(relu(x),cosh(elu(x)))"


def test_module_computes_the_expression():
    x = torch.linspace(-3, 3, 50, dtype=torch.float64)
    expected = torch.maximum(torch.relu(x), torch.cosh(torch.nn.functional.elu(x)))
    assert torch.equal(to_module(NAME)(x), expected)
    assert str(to_module(NAME)) == NAME


def test_pickle_deepcopy_and_state_dict():
    module = to_module("sum_n(abs(x),swish(x),sigmoid(x))")
    x = torch.randn(4, 7)
    for clone in (pickle.loads(pickle.dumps(module)), copy.deepcopy(module)):
        assert torch.equal(clone(x), module(x))
        assert str(clone) == str(module)
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    fresh = to_module("sum_n(abs(x),swish(x),sigmoid(x))")
    fresh.load_state_dict(torch.load(io.BytesIO(buffer.getvalue())))
    assert torch.equal(fresh(x), module(x))


def test_activation_in_a_model_trains():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), to_module("add(tanh(x),relu(x))"), nn.Linear(8, 1))
    x = torch.randn(64, 3)
    y = (x[:, :1] * x[:, 1:2]).abs()  # needs the non-linearity
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(200):
        loss = nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    # the first layer's gradient flows through the activation: the chain rule by hand
    h = model[0](x).detach().requires_grad_()
    (got,) = torch.autograd.grad(nn.functional.mse_loss(model[2](model[1](h)), y), h)
    (want,) = torch.autograd.grad(
        nn.functional.mse_loss(model[2](torch.tanh(h) + torch.relu(h)), y), h)
    torch.testing.assert_close(got, want)
    gradcheck_input = torch.linspace(-2, 2, 9, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(to_module("mul(swish(x),arctan(x))"), (gradcheck_input,))


def test_matches_batched_evaluation():
    names = ["pow(x,one(x))", "div(x,add(one(x),abs(x)))", NAME]
    x = torch.linspace(-5, 5, 64)
    assert torch.equal(evaluate(names, x), torch.stack([to_module(n)(x) for n in names]))


def test_torch_compile_full_graph():
    module = to_module("add(swish(x),mul(tanh(x),x))")
    compiled = torch.compile(module, backend="aot_eager", fullgraph=True)
    x = torch.randn(16)
    torch.testing.assert_close(compiled(x), module(x))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("normalize", [False, True])
def test_low_precision_input_is_computed_in_float32(dtype, normalize):
    """Under autocast a network hands its activations bfloat16 tensors; the expression runs
    in float32 (not every operator has a low-precision kernel) and returns the input's
    dtype: the float32 result rounded once."""
    module = to_module("add(bessel_i1e(x),tanh(x))", normalize=normalize)
    x = torch.linspace(-4, 4, 97).to(dtype).requires_grad_()
    y = module(x)
    assert y.dtype == dtype
    assert torch.equal(y, module(x.detach().float()).to(dtype))
    y.float().sum().backward()  # bessel_i1e's gradient has no bfloat16 kernel
    assert x.grad.dtype == dtype and torch.isfinite(x.grad.float()).all()


def test_float64_input_stays_float64():
    x = torch.linspace(-4, 4, 9, dtype=torch.float64)
    assert to_module("tanh(x)")(x).dtype == torch.float64
