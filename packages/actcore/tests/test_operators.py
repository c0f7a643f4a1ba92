"""Every operator of SPEC.md against an independent float64 formula (numpy/scipy)."""

import numpy as np
import pytest
import scipy.special as sp
import torch

from actcore import N_ARY, get_operator
from actcore.operators import builtin_operators

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _sigmoid(x):
    return sp.expit(x)


UNARY = {
    "zero": lambda x: np.zeros_like(x),
    "one": lambda x: np.ones_like(x),
    "identity": lambda x: x,
    "negative": lambda x: -x,
    "abs": np.abs,
    "reciprocal": lambda x: np.divide(1.0, x),
    "square": lambda x: x * x,
    "exp": np.exp,
    "erf": sp.erf,
    "erfc": sp.erfc,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "tanh": np.tanh,
    "expm1": np.expm1,
    "sigmoid": _sigmoid,
    "log_sigmoid": sp.log_expit,
    "arcsinh": np.arcsinh,
    "arctan": np.arctan,
    "bessel_i0e": sp.i0e,
    "bessel_i1e": sp.i1e,
    "relu": lambda x: np.maximum(x, 0.0),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0))),
    "swish": lambda x: x * _sigmoid(x),
    "softplus": lambda x: np.logaddexp(0.0, x),
    "softsign": lambda x: x / (1 + np.abs(x)),
    "hard_sigmoid": lambda x: np.clip(0.2 * x + 0.5, 0.0, 1.0),
}
EXTENDED = {
    "elish": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))) * _sigmoid(x),
    "leakyrelu": lambda x: np.where(x > 0, x, 0.01 * x),
    "mish": lambda x: x * np.tanh(np.logaddexp(0.0, x)),
    "gelu": lambda x: 0.5 * x * (1 + sp.erf(x / np.sqrt(2))),
}
BINARY = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "pow": np.power,
    "max": np.maximum,
    "min": np.minimum,
}
NARY = {"sum_n": np.sum, "prod_n": np.prod, "max_n": np.max, "min_n": np.min}

EDGES = np.array(
    [-50.0, -20.0, -5.0, -1.0, -0.5, -1e-3, -0.0, 0.0, 1e-3, 0.5, 1.0, 2.5, 5.0, 20.0, 50.0]
)


def _close(actual, expected, rtol, atol=0.0):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)


def test_the_table_has_spec_sizes():
    ops = builtin_operators()
    core = [op for op in ops if not op.extended]
    assert [op.name for op in ops if op.extended] == list(EXTENDED)
    assert [op.name for op in core if op.arity == 1] == list(UNARY)
    assert [op.name for op in core if op.arity == 2] == list(BINARY)
    assert [op.name for op in core if op.arity == N_ARY] == list(NARY)


@pytest.mark.parametrize("name", [*UNARY, *EXTENDED])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_unary_matches_formula(name, dtype):
    rng = np.random.default_rng(1)
    x = np.concatenate([EDGES, rng.normal(0, 2, 200)]).astype(
        np.float32 if dtype == torch.float32 else np.float64
    )
    with np.errstate(all="ignore"):
        expected = {**UNARY, **EXTENDED}[name](x.astype(np.float64))
    with np.errstate(all="ignore"):
        actual = get_operator(name).fn(torch.from_numpy(x)).numpy()
    assert actual.dtype == x.dtype
    if dtype == torch.float64:
        _close(actual, expected, rtol=1e-12, atol=1e-300)
    else:
        # float32 formulas lose absolute accuracy near cancellations (gelu at x << 0)
        _close(actual, expected.astype(np.float32), rtol=2e-6, atol=1e-6)


def test_signed_zero_and_infinities():
    z = torch.tensor([0.0, -0.0])
    assert get_operator("reciprocal").fn(z).tolist() == [float("inf"), float("-inf")]
    assert get_operator("exp").fn(torch.tensor([100.0])).item() == float("inf")
    assert get_operator("log_sigmoid").fn(torch.tensor([-200.0])).item() == -200.0
    assert get_operator("softplus").fn(torch.tensor([-200.0, 200.0])).tolist() == [0.0, 200.0]


@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_binary_matches_formula(name, dtype):
    a = np.repeat(EDGES, len(EDGES))
    b = np.tile(EDGES, len(EDGES))
    if name == "pow":  # negative bases with fractional exponents give NaN
        a = np.concatenate([a, [-8.0, -2.0, 0.0, 0.0, 4.0]])
        b = np.concatenate([b, [1 / 3, 3.0, -1.0, 0.0, 0.5]])
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    a, b = a.astype(np_dtype), b.astype(np_dtype)
    with np.errstate(all="ignore"):
        expected = BINARY[name](a.astype(np.float64), b.astype(np.float64))
        actual = get_operator(name).fn(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    if dtype == torch.float32:
        with np.errstate(over="ignore"):  # pow(50, 50) overflows float32 to inf, as torch
            expected = expected.astype(np.float32)
    _close(actual, expected, rtol=1e-12 if dtype == torch.float64 else 2e-6)


def test_pow_edge_values():
    pow_ = get_operator("pow").fn
    out = pow_(
        torch.tensor([-8.0, -2.0, 0.0, 0.0, float("nan")]),
        torch.tensor([1 / 3, 3.0, -1.0, 0.0, 0.0]),
    )
    assert np.isnan(out[0].item())
    assert out[1:].tolist() == [-8.0, float("inf"), 1.0, 1.0]


@pytest.mark.parametrize("name", list(NARY))
@pytest.mark.parametrize("count", [1, 2, 5])
def test_nary_matches_formula(name, count):
    rng = np.random.default_rng(count)
    args = rng.normal(0, 3, (count, 50))
    args[0, 0] = np.nan
    actual = get_operator(name).fn(*torch.from_numpy(args)).numpy()
    _close(actual, NARY[name](args, axis=0), rtol=1e-12)


@pytest.mark.parametrize(
    "name", ["tanh", "swish", "softplus", "gelu", "mish", "erf", "arcsinh", "bessel_i1e"]
)
def test_gradients_of_smooth_unary(name):
    x = torch.linspace(-3, 3, 11, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(get_operator(name).fn, (x,))


@pytest.mark.parametrize("name", ["div", "pow", "mul"])
def test_gradients_of_binary(name):
    a = torch.linspace(0.5, 3, 6, dtype=torch.float64).requires_grad_()
    b = torch.linspace(-2, 2, 6, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(get_operator(name).fn, (a, b))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", [*UNARY, *EXTENDED, *BINARY, *NARY])
def test_cuda_matches_cpu(name):
    op = get_operator(name)
    args = [torch.randn(100, dtype=torch.float64) for _ in range(op.arity if op.arity > 0 else 3)]
    cpu = op.fn(*args)
    gpu = op.fn(*[a.cuda() for a in args]).cpu()
    _close(gpu.numpy(), cpu.numpy(), rtol=1e-10, atol=1e-300)
