"""Turn whatever a user calls "the activation" into a factory of fresh modules.

Models place an activation at every hidden layer, and each site needs its own module
(learnable activations such as acthull's hulls must not share parameters across layers),
so models take a zero-argument factory. :func:`activation_factory` accepts an expression
(``add(relu(x),tanh(x))``, ``convex_n(identity(x),relu(x))``), a registered operator name
(``relu`` means ``relu(x)``) or a callable that returns an ``nn.Module``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from actcore import ActError, parse, to_module
from actcore.expr import Expr

ActivationFactory = Callable[[], nn.Module]
ActivationSpec = str | Expr | ActivationFactory


def expression_of(activation: str | Expr) -> Expr:
    """Parse an expression; a bare operator name ``relu`` stands for ``relu(x)``."""
    return parse(activation.strip() if isinstance(activation, str) else activation)


def activation_factory(activation: ActivationSpec, normalize: bool = False) -> ActivationFactory:
    """A zero-argument callable returning a new activation module on every call.

    Text is parsed (and its operators looked up) here, once, so a bad expression raises
    :class:`actcore.ActError` before any model is built. ``normalize`` compiles
    expressions normalised to mean 0, variance 1 under N(0, 1) (a factory is used as is).
    """
    if isinstance(activation, str | Expr):
        expr = expression_of(activation)
        if normalize:
            to_module(expr, normalize=True)  # a function without moments fails here, once
        return lambda: to_module(expr, normalize=normalize)
    if callable(activation):
        return _checked(activation)
    raise ActError(
        f"activation must be an expression, an operator name or a module factory, "
        f"not {type(activation).__name__}"
    )


def _checked(factory: Callable[[], object]) -> ActivationFactory:
    def make() -> nn.Module:
        module = factory()
        if not isinstance(module, nn.Module):
            raise ActError(
                f"activation factory {factory!r} returned {type(module).__name__}, "
                f"not a torch.nn.Module"
            )
        return module

    return make


def activation_name(activation: ActivationSpec) -> str:
    """A printable name: the canonical expression, or the factory's name."""
    if isinstance(activation, str | Expr):
        return str(expression_of(activation))
    return getattr(activation, "__name__", None) or repr(activation)
