"""Compile expressions to ``torch.nn.Module`` activations.

The compiled module is an ordinary module tree (one node module per operator), so it
pickles, deep-copies, has a ``state_dict`` (learnable operators' parameters included) and
traces under ``torch.compile``. Operator functions are looked up by name again after
unpickling, so plugin operators need not be importable by reference.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from actcore.errors import ActError
from actcore.expr import Expr, get_operator, parse

#: input dtypes an activation is evaluated above, in float32
LOW_PRECISION = (torch.float16, torch.bfloat16)


class Input(nn.Module):
    """The leaf ``x``."""

    def forward(self, x: Tensor) -> Tensor:
        return x


class Apply(nn.Module):
    """A fixed operator applied to the outputs of its argument modules."""

    def __init__(self, op: str, args: list[nn.Module]):
        super().__init__()
        self.op = op
        self.fn = get_operator(op).fn
        self.args = nn.ModuleList(args)

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(*[arg(x) for arg in self.args])

    def extra_repr(self) -> str:
        return self.op

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("fn")
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.fn = get_operator(self.op).fn


class Activation(nn.Module):
    """An activation function compiled from an expression; ``str()`` gives its name.

    With ``normalize=True`` it computes ``(f(x) - m) / s``, where ``m`` and ``s`` are the
    mean and standard deviation of ``f(x)`` for ``x ~ N(0, 1)`` (see
    :mod:`actcore.normalize`): output mean 0 and variance 1 for a standard normal input.
    A bfloat16 or half input (a network under autocast) is computed in float32 and the
    result rounded once to the input's dtype.
    """

    def __init__(self, expr: str | Expr, normalize: bool = False):
        super().__init__()
        expr = parse(expr)
        self.expression = str(expr)
        self.root = build(expr)
        self.normalized = bool(normalize)
        if self.normalized:
            from actcore.normalize import normalization

            if any(get_operator(node.op).learnable for node in expr.nodes() if node.args):
                raise ActError(f"{self.expression} has learnable parameters: its moments "
                               "change while it trains, so it cannot be normalised once")
            mean, std = normalization(expr)
            # float64: a float64 network gets the moments to full precision
            self.register_buffer("shift", torch.tensor(mean, dtype=torch.float64))
            self.register_buffer("scale", torch.tensor(1.0 / std, dtype=torch.float64))

    def forward(self, x: Tensor) -> Tensor:
        # below float32 (bfloat16 or half, as under autocast) the expression runs in float32:
        # not every operator has a low-precision kernel (bessel_i1e's gradient has none),
        # and 8 significant bits blur the shapes the functions differ by
        low = x.dtype in LOW_PRECISION
        y = self.root(x.float() if low else x)
        if self.normalized:
            y = (y - self.shift.to(y.dtype)) * self.scale.to(y.dtype)
        return y.to(x.dtype) if low else y

    def extra_repr(self) -> str:
        return f"{self.expression}, normalized" if self.normalized else self.expression

    def __str__(self) -> str:
        return self.expression


def build(expr: Expr) -> nn.Module:
    """The module of one expression node (learnable operators build their own)."""
    if expr.is_input:
        return Input()
    op = get_operator(expr.op)
    args = [build(arg) for arg in expr.args]
    if op.module is not None:
        return op.module(args)
    return Apply(expr.op, args)


def to_module(expr: str | Expr, normalize: bool = False) -> Activation:
    """Compile an expression (text or :class:`Expr`) to an activation module; with
    ``normalize``, one whose output has mean 0 and variance 1 under x ~ N(0, 1)."""
    return Activation(expr, normalize=normalize)
