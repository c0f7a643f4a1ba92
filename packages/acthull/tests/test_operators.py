"""convex_n/affine_n as actcore operators: parse, print, compile, mix with fixed ones."""

import pytest
import torch

from actcore import N_ARY, get_operator, parse, to_module
from acthull import AffineHull, ConvexHull


@pytest.mark.parametrize(
    "text",
    ["affine_n(identity(x),relu(x),tanh(x))", "convex_n(identity(x),relu(x))",
     "add(convex_n(identity(x),relu(x)),tanh(x))", "affine_n(x,convex_n(relu(x),elu(x)))"],
)
def test_parse_print_compile(text):
    assert str(parse(text)) == text
    module = to_module(text)
    assert str(module) == text
    y = module(torch.randn(5, 3))
    assert y.shape == (5, 3)


def test_registered_as_learnable_n_ary():
    for name, cls in (("convex_n", ConvexHull), ("affine_n", AffineHull)):
        op = get_operator(name)
        assert op.arity == N_ARY and op.learnable
        assert isinstance(to_module(f"{name}(relu(x),tanh(x))").root, cls)


def test_compiled_expression_matches_the_formula():
    module = to_module("add(convex_n(identity(x),relu(x)),tanh(x))")
    hull = module.root.args[0]
    with torch.no_grad():
        hull.raw.copy_(torch.tensor([1.0, -1.0]))
    x = torch.randn(100, dtype=torch.float64)
    p = torch.softmax(torch.tensor([1.0, -1.0], dtype=torch.float64), 0)
    expected = p[0] * x + p[1] * torch.relu(x) + torch.tanh(x)
    torch.testing.assert_close(module.double()(x), expected)
    assert [n for n, _ in module.named_parameters()] == ["root.args.0.raw"]


def test_gradients_when_only_input_or_only_coefficients_need_them():
    hull = AffineHull(["identity", "relu", "tanh", "exp"])
    x = torch.randn(6, 2)
    hull(x).sum().backward()  # x needs no gradient
    assert hull.raw.grad is not None
    expected = hull.raw.grad.clone()
    hull.raw.requires_grad_(False)
    xg = x.clone().requires_grad_()
    hull(xg).sum().backward()  # the coefficients need none
    c = hull.coefficients()
    slope = c[0] + c[1] * (x > 0) + c[2] * (1 - torch.tanh(x) ** 2) + c[3] * torch.exp(x)
    torch.testing.assert_close(xg.grad, slope)
    f = torch.stack([x, torch.relu(x), torch.tanh(x), torch.exp(x)]).sum((1, 2))
    centred = f - f.mean()  # d/d raw of Σ_i (raw_i - mean(raw) + 1/N) f_i
    torch.testing.assert_close(expected, centred)
