"""actcore: activation functions as computation graphs, and act's plugin registry."""

from actcore.compile import Activation, to_module
from actcore.equivalence import EquivalenceClasses, equivalence_classes
from actcore.errors import ActError, ParseError, PluginError, UnknownNameError
from actcore.evaluate import evaluate, exact_outputs, sample_points
from actcore.expr import Expr, X, get_operator, parse, parse_schema
from actcore.hookspecs import hookimpl
from actcore.operators import N_ARY, Operator
from actcore.space import Pattern, Space, core_operators
from actcore.versions import package_version

__version__ = package_version("actcore")

__all__ = [
    "N_ARY",
    "ActError",
    "Activation",
    "EquivalenceClasses",
    "Expr",
    "Operator",
    "ParseError",
    "Pattern",
    "PluginError",
    "Space",
    "UnknownNameError",
    "X",
    "core_operators",
    "equivalence_classes",
    "evaluate",
    "exact_outputs",
    "get_operator",
    "hookimpl",
    "parse",
    "parse_schema",
    "sample_points",
    "to_module",
]
