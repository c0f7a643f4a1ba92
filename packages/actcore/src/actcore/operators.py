"""Operators: the building blocks of activation-function expressions.

An :class:`Operator` has a name, an arity (1, 2 or ``N_ARY``) and a torch function of
that many tensors. Learnable operators (e.g. acthull's ``convex_n``) instead give a
``module`` factory that receives the compiled argument modules and returns one
``nn.Module`` mapping the input ``x`` to the output, so they can own parameters and
recompute their arguments in backward.

The built-in set is the published operator table; its functions are defined at module level so
compiled activations pickle.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

N_ARY = -1


@dataclass(frozen=True)
class Operator:
    """A named operator of fixed arity (1, 2) or any arity ``N_ARY`` (at least one)."""

    name: str
    arity: int
    fn: Callable[..., Tensor] | None = None
    module: Callable[[Sequence[nn.Module]], nn.Module] | None = field(default=None)
    description: str = ""
    extended: bool = False

    def __post_init__(self) -> None:
        if self.arity not in (1, 2, N_ARY):
            raise ValueError(f"operator {self.name!r}: arity must be 1, 2 or N_ARY")
        if (self.fn is None) == (self.module is None):
            raise ValueError(f"operator {self.name!r}: give exactly one of fn and module")

    @property
    def learnable(self) -> bool:
        return self.module is not None


# --- unary (27) -----------------------------------------------------------------------


def zero(x: Tensor) -> Tensor:
    return torch.zeros_like(x)


def one(x: Tensor) -> Tensor:
    return torch.ones_like(x)


def identity(x: Tensor) -> Tensor:
    return x


def hard_sigmoid(x: Tensor) -> Tensor:
    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


def elu(x: Tensor) -> Tensor:
    return F.elu(x, alpha=1.0)


def gelu(x: Tensor) -> Tensor:
    return F.gelu(x, approximate="none")


def leakyrelu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, negative_slope=0.01)


def elish(x: Tensor) -> Tensor:
    return torch.where(x > 0, x, torch.expm1(x)) * torch.sigmoid(x)


# --- n-ary -----------------------------------------------------------------------------


def sum_n(*args: Tensor) -> Tensor:
    return functools.reduce(torch.add, args)


def prod_n(*args: Tensor) -> Tensor:
    return functools.reduce(torch.mul, args)


def max_n(*args: Tensor) -> Tensor:
    return functools.reduce(torch.maximum, args)


def min_n(*args: Tensor) -> Tensor:
    return functools.reduce(torch.minimum, args)


_UNARY: list[tuple[str, Callable[[Tensor], Tensor], str]] = [
    ("zero", zero, "0"),
    ("one", one, "1"),
    ("identity", identity, "x"),
    ("negative", torch.neg, "-x"),
    ("abs", torch.abs, "|x|"),
    ("reciprocal", torch.reciprocal, "1/x"),
    ("square", torch.square, "x^2"),
    ("exp", torch.exp, "e^x"),
    ("erf", torch.erf, "error function"),
    ("erfc", torch.erfc, "1 - erf(x)"),
    ("sinh", torch.sinh, "hyperbolic sine"),
    ("cosh", torch.cosh, "hyperbolic cosine"),
    ("tanh", torch.tanh, "hyperbolic tangent"),
    ("expm1", torch.expm1, "e^x - 1"),
    ("sigmoid", torch.sigmoid, "1/(1+e^-x)"),
    ("log_sigmoid", F.logsigmoid, "log sigmoid(x)"),
    ("arcsinh", torch.asinh, "inverse hyperbolic sine"),
    ("arctan", torch.atan, "inverse tangent"),
    ("bessel_i0e", torch.special.i0e, "exponentially scaled modified Bessel I0"),
    ("bessel_i1e", torch.special.i1e, "exponentially scaled modified Bessel I1"),
    ("relu", torch.relu, "max(0, x)"),
    ("elu", elu, "x if x>0 else e^x-1"),
    ("selu", torch.selu, "scaled ELU (standard constants)"),
    ("swish", F.silu, "x sigmoid(x)"),
    ("softplus", F.softplus, "log(1+e^x)"),
    ("softsign", F.softsign, "x/(1+|x|)"),
    ("hard_sigmoid", hard_sigmoid, "max(0, min(1, 0.2x+0.5))"),
]

_EXTENDED: list[tuple[str, Callable[[Tensor], Tensor], str]] = [
    ("elish", elish, "x sigmoid(x) if x>0 else (e^x-1) sigmoid(x)"),
    ("leakyrelu", leakyrelu, "x if x>0 else 0.01x"),
    ("mish", F.mish, "x tanh(softplus(x))"),
    ("gelu", gelu, "x Phi(x) (exact erf form)"),
]

_BINARY: list[tuple[str, Callable[[Tensor, Tensor], Tensor], str]] = [
    ("add", torch.add, "x1 + x2"),
    ("sub", torch.sub, "x1 - x2"),
    ("mul", torch.mul, "x1 * x2"),
    ("div", torch.div, "x1 / x2"),
    ("pow", torch.pow, "x1 ^ x2"),
    ("max", torch.maximum, "max(x1, x2)"),
    ("min", torch.minimum, "min(x1, x2)"),
]

_NARY: list[tuple[str, Callable[..., Tensor], str]] = [
    ("sum_n", sum_n, "x1 + ... + xn"),
    ("prod_n", prod_n, "x1 * ... * xn"),
    ("max_n", max_n, "max(x1, ..., xn)"),
    ("min_n", min_n, "min(x1, ..., xn)"),
]


def builtin_operators() -> list[Operator]:
    """The published operator table: 27 unary + 4 extended unary, 7 binary, 4 n-ary."""
    ops = [Operator(n, 1, f, description=d) for n, f, d in _UNARY]
    ops += [Operator(n, 1, f, description=d, extended=True) for n, f, d in _EXTENDED]
    ops += [Operator(n, 2, f, description=d) for n, f, d in _BINARY]
    ops += [Operator(n, N_ARY, f, description=d) for n, f, d in _NARY]
    return ops
