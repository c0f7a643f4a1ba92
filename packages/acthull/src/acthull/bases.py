"""Base functions of a hull: compiled from actcore names or expressions, and named back.

A base is written as an operator name (``relu``), or as a whole expression over ``x``
(``swish(x)``, ``elu(tanh(x))``); any operator an installed plugin registers works.
"""

from __future__ import annotations

from torch import nn

import actcore
from actcore.compile import Apply, Input, build
from actcore.errors import ActError


def expression(base: str) -> str:
    """The canonical expression of a base: ``relu`` becomes ``relu(x)``."""
    if not isinstance(base, str):
        raise ActError(f"a base function is a name or an expression, got {type(base).__name__}")
    return str(actcore.parse(base.strip()))


def compile_base(base: str | actcore.Expr | nn.Module) -> nn.Module:
    """A module mapping ``x`` to ``f(x)``; modules (already compiled) pass through."""
    if isinstance(base, nn.Module):
        return base
    if isinstance(base, actcore.Expr):
        return build(base)
    return build(actcore.parse(expression(base)))


def describe(module: nn.Module) -> str:
    """The expression a compiled base computes, e.g. ``tanh(x)``.

    Works for actcore's node modules, :class:`actcore.Activation` and hulls; any other
    module is named by its class.
    """
    if isinstance(module, Input):
        return "x"
    if isinstance(module, Apply):
        return f"{module.op}({','.join(describe(arg) for arg in module.args)})"
    text = getattr(module, "expression", None)
    if isinstance(text, str):
        return text
    return type(module).__name__


def is_expression(module: nn.Module) -> bool:
    """Whether a compiled base is a plain actcore expression tree (no other modules)."""
    return all(isinstance(m, (Input, Apply, nn.ModuleList)) for m in module.modules())
