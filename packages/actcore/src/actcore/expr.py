"""Expressions: activation functions as trees of operators over the input ``x``.

The text form is the interchange naming of the Act-Bench files, without spaces:
``max(relu(x),cosh(elu(x)))``. :func:`parse` and ``str`` round-trip exactly.
Schemas use the same grammar with the placeholders ``unary``, ``binary`` and ``n-ary``
standing for any operator of that arity (see :mod:`actcore.space`).

Two conveniences, for people rather than files: a bare unary operator name is the function
of ``x`` (``relu`` parses as ``relu(x)``), and PyTorch's common names are aliases of act's
operators (``silu`` is ``swish``). Both parse to the canonical expression, so what is
printed and stored is always the Act-Bench naming.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from actcore.errors import ParseError, UnknownNameError
from actcore.operators import N_ARY, Operator
from actcore.plugins import OPERATORS, registry

INPUT = "x"
PLACEHOLDERS = {"unary": 1, "binary": 2, "n-ary": N_ARY}
MAX_DEPTH = 64
#: PyTorch's (and the literature's) names for act's operators.
ALIASES = {
    "silu": "swish",
    "leaky_relu": "leakyrelu",
    "hardsigmoid": "hard_sigmoid",
    "logsigmoid": "log_sigmoid",
    "asinh": "arcsinh",
    "atan": "arctan",
    "neg": "negative",
    "i0e": "bessel_i0e",
    "i1e": "bessel_i1e",
}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*")


@dataclass(frozen=True, slots=True)
class Expr:
    """A node: operator name and argument expressions. ``Expr("x", ())`` is the input."""

    op: str
    args: tuple[Expr, ...] = ()
    # cached: expressions key dicts of shared sub-expressions, and deep trees hash slowly
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.op, self.args)))

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple:
        # rebuild through __init__: string hashes differ between processes
        return (Expr, (self.op, self.args))

    def __str__(self) -> str:
        if not self.args:
            return self.op
        return f"{self.op}({','.join(map(str, self.args))})"

    def __repr__(self) -> str:
        return f"Expr({str(self)!r})"

    @property
    def is_input(self) -> bool:
        return self.op == INPUT and not self.args

    def nodes(self) -> Iterator[Expr]:
        """All nodes, parents before children."""
        yield self
        for arg in self.args:
            yield from arg.nodes()

    @property
    def depth(self) -> int:
        return 1 + max((a.depth for a in self.args), default=0)


X = Expr(INPUT)


def canonical_name(name: str) -> str:
    """act's name of an operator given by an alias (``silu`` -> ``swish``); a registered
    name (a plugin may claim an alias for itself) stays as it is."""
    if name in ALIASES and name not in registry(OPERATORS):
        return ALIASES[name]
    return name


def get_operator(name: str) -> Operator:
    """The registered operator ``name`` or alias (error lists close names)."""
    return registry(OPERATORS).get(canonical_name(name))


def parse(text: str | Expr) -> Expr:
    """Parse an expression such as ``add(relu(x),tanh(x))``; raise :class:`ParseError`."""
    if isinstance(text, Expr):
        return text
    return _Parser(text, schema=False).parse()


def parse_schema(text: str | Expr) -> Expr:
    """Parse a schema: an expression whose operators may be ``unary``/``binary``/``n-ary``."""
    if isinstance(text, Expr):
        return text
    return _Parser(text, schema=True).parse()


class _Parser:
    def __init__(self, text: str, schema: bool):
        if not isinstance(text, str):
            raise ParseError(f"expected a string, got {type(text).__name__}", "", 0)
        self.text = text
        self.schema = schema
        self.pos = 0
        self.ops = registry(OPERATORS)

    def error(self, message: str, position: int | None = None) -> ParseError:
        return ParseError(message, self.text, self.pos if position is None else position)

    def parse(self) -> Expr:
        if not self.text.strip():
            raise self.error("empty expression", 0)
        expr = self.node(depth=1)
        if self.pos != len(self.text):
            if self.text[self.pos] == ")":
                raise self.error("unbalanced parentheses: unexpected ')'")
            raise self.error(f"unexpected trailing characters {self.text[self.pos:]!r}")
        return expr

    def node(self, depth: int) -> Expr:
        if depth > MAX_DEPTH:
            raise self.error(f"expression nested deeper than {MAX_DEPTH} levels")
        start = self.pos
        match = _NAME.match(self.text, self.pos)
        if match is None:
            found = repr(self.text[self.pos]) if self.pos < len(self.text) else "end of input"
            raise self.error(f"expected an operator name or 'x', found {found}")
        name = match.group()
        if name != INPUT and not (self.schema and name in PLACEHOLDERS):
            name = canonical_name(name)
        self.pos = match.end()
        if self.pos >= len(self.text) or self.text[self.pos] != "(":
            if name == INPUT:
                return Expr(INPUT)
            arity = self.check_name(name, start)
            if depth == 1 and self.pos == len(self.text) and not self.schema:
                if arity == 1:
                    return Expr(name, (X,))  # "relu" alone: the function relu(x)
                wanted = "at least 1" if arity == N_ARY else str(arity)
                raise self.error(f"wrong arity: {name!r} takes {wanted} argument(s); only a "
                                 "unary operator's bare name stands for name(x)", start)
            raise self.error(f"operator {name!r} needs its arguments in parentheses")
        if name == INPUT:
            raise self.error("'x' is the input and takes no arguments", start)
        arity = self.check_name(name, start)
        self.pos += 1  # "("
        if self.pos < len(self.text) and self.text[self.pos] == ")":
            wanted = "at least 1" if arity == N_ARY else str(arity)
            raise self.error(f"wrong arity: {name!r} takes {wanted} argument(s), got 0", start)
        args = [self.node(depth + 1)]
        while self.pos < len(self.text) and self.text[self.pos] == ",":
            self.pos += 1
            args.append(self.node(depth + 1))
        if self.pos >= len(self.text):
            raise self.error(f"unbalanced parentheses: '(' of {name!r} is never closed", start)
        if self.text[self.pos] != ")":
            raise self.error(f"expected ',' or ')', found {self.text[self.pos]!r}")
        self.pos += 1
        if not (len(args) >= 1 if arity == N_ARY else len(args) == arity):
            wanted = "at least 1" if arity == N_ARY else str(arity)
            raise self.error(
                f"wrong arity: {name!r} takes {wanted} argument(s), got {len(args)}", start
            )
        return Expr(name, tuple(args))

    def check_name(self, name: str, start: int) -> int:
        if self.schema and name in PLACEHOLDERS:
            return PLACEHOLDERS[name]
        try:
            return self.ops.get(name).arity
        except UnknownNameError as err:
            known = [*self.ops.names(), *(PLACEHOLDERS if self.schema else ())]
            hint = UnknownNameError("operator", name, known)
            raise self.error(str(hint), start) from err
