"""Expressions as a person would write them, for reports.

A class's representative is a member of the searched space, so in
``binary(unary(x),unary(x))`` ReLU is represented by ``div(relu(x),one(x))``. Reports
show :func:`readable` names instead: the same function with exact identities applied
(``f / 1 = f``, ``f + 0 = f``, ``identity(f) = f``, ``max(f, f) = f``...). Every rule
holds for every input, infinities and NaN included, so the readable name is the same
function, not an approximation.
"""

from __future__ import annotations

from actcore.expr import Expr, parse

_ONE, _ZERO = "one", "zero"


def readable(expr: str | Expr) -> str:
    """The shortest form of ``expr`` that act's identities give, as text."""
    return str(_simplify(parse(expr)))


def _is(node: Expr, op: str) -> bool:
    return node.op == op and len(node.args) == 1


def _simplify(node: Expr) -> Expr:
    if not node.args:
        return node
    args = tuple(_simplify(arg) for arg in node.args)
    op = node.op
    if op == "identity" or (op in ("sum_n", "prod_n", "max_n", "min_n") and len(args) == 1):
        return args[0]
    if len(args) == 2:
        a, b = args
        if op in ("add", "sub") and _is(b, _ZERO):
            return a
        if op == "add" and _is(a, _ZERO):
            return b
        if op in ("mul", "div", "pow") and _is(b, _ONE):
            return a
        if op == "mul" and _is(a, _ONE):
            return b
        if op in ("max", "min") and a == b:
            return a
        if op == "sub" and _is(a, _ZERO):
            return _simplify(Expr("negative", (b,)))
    if len(args) == 1:
        (a,) = args
        if op == "negative" and a.op == "negative":
            return a.args[0]
        if op in ("abs", "relu") and a.op == op:
            return a
    return Expr(op, args)
