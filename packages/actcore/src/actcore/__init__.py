"""actcore: activation functions as computation graphs, and act's plugin registry."""

from actcore.compile import Activation, to_module
from actcore.errors import ActError, ParseError, PluginError, UnknownNameError
from actcore.expr import Expr, X, get_operator, parse, parse_schema
from actcore.hookspecs import hookimpl
from actcore.operators import N_ARY, Operator

__all__ = [
    "N_ARY",
    "ActError",
    "Activation",
    "Expr",
    "Operator",
    "ParseError",
    "PluginError",
    "UnknownNameError",
    "X",
    "get_operator",
    "hookimpl",
    "parse",
    "parse_schema",
    "to_module",
]
