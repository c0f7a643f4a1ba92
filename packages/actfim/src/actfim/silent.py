"""Layers that no activation function reaches at initialisation, told apart from layers an
activation function silences.

A factor that is zero means the layer gets no gradient (G) or no input (A). That may be
the activation function's doing — ``zero(x)`` or ``one(x)`` pass no gradient, and such
a function is predicted to fail training — or the architecture's: timm initialises the
last BatchNorm of a residual branch to zero (``zero_init_last``), torchvision's ResNets
do with ``zero_init_residual=True``, and a branch behind a zero scale gets no gradient
whatever the activation. The rule compares with the same model, weights and batch whose
activation functions are replaced by references:

- G: a layer is silent when its G is zero also with every activation the identity (whose
  slope, 1 everywhere, passes every gradient the architecture lets through);
- A: when its A is zero also with the identity and with ``x + 1`` (a function that is not
  zero at 0: an input that stays zero then is zero by structure, not because f(0) = 0).

Silent layers are left out of the spectrum and its CDF features (they have no curvature
to describe, for any function), named with the reason; since they depend only on the
model, the feature length stays fixed for a given model. The reference passes run only
when some layer has a zero factor, so models without one pay nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import TypeVar

from pydantic import BaseModel
from torch import Tensor, nn

from actcore.activation_kinds import kind_of_module, swap_modules
from actcore.errors import ActError
from actcore.stacked import StackedActivation

L = TypeVar("L")  # a layer's spectrum, one or stacked: has name, kind and num_weights

WHY = {
    "G": "no gradient reaches it at initialisation, with any activation (its factor G is "
         "zero with identity activations too)",
    "A": "its input is zero at initialisation, with any activation (its factor A is zero "
         "with identity and x + 1 activations too)",
}


class SilentLayer(BaseModel):
    """A layer left out of the spectrum: no activation function gives it curvature."""

    name: str
    kind: str
    num_weights: int
    why: str

    def __str__(self) -> str:
        return f"{self.name} ({self.kind}, {self.num_weights:,} weights): {self.why}"


def _is_activation(module: nn.Module) -> bool:
    return kind_of_module(module) is not None or isinstance(module, StackedActivation)


class _Shift(nn.Module):
    """``x + shift``: the reference activation."""

    def __init__(self, shift: float):
        super().__init__()
        self.shift = shift

    def forward(self, x: Tensor) -> Tensor:
        return x + self.shift


def reference_model(model: nn.Module, shift: float = 0.0) -> nn.Module:
    """A copy of ``model`` (same weights) whose activation modules all compute
    ``x + shift``."""
    reference = copy.deepcopy(model)
    chosen: dict[str, nn.Module] = {}
    for name, module in reference.named_modules(remove_duplicate=False):  # shared too
        inside = any(name.startswith(f"{outer}.") for outer in chosen)
        if name and not inside and _is_activation(module):
            chosen[name] = _Shift(shift)
    swap_modules(reference, chosen)
    return reference


def _zero(model: nn.Module, shift: float, inputs: Tensor, targets: Tensor | None,
          options: dict) -> dict[str, set[str]]:
    """Per layer, its factors that are zero in the reference; nothing when the reference
    cannot be computed (then no layer is called silent)."""
    from actfim.factors import kfac_factors

    try:
        factors, _, _ = kfac_factors(reference_model(model, shift), inputs, targets,
                                     **options)
    except ActError:
        raise
    except Exception:  # e.g. an output that is not finite without the activations
        return {}
    return {layer.name: {which for which, factor in (("G", layer.g), ("A", layer.a))
                         if not bool(factor.any())} for layer in factors}


def zero_factors(model: nn.Module, inputs: Tensor, targets: Tensor | None,
                 **options) -> dict[str, str]:
    """The silent layers of ``model``: name -> the factor ("G" or "A") that no activation
    function makes non-zero (arguments as for :func:`actfim.kfac_factors`)."""
    identity = _zero(model, 0.0, inputs, targets, options)
    silent = {name: "G" for name, zero in identity.items() if "G" in zero}
    if any("A" in zero for zero in identity.values()):
        shifted = _zero(model, 1.0, inputs, targets, options)
        silent.update({name: "A" for name, zero in identity.items()
                       if "A" in zero and "A" in shifted.get(name, ()) and name not in silent})
    return silent


def silent_layers(problems: Iterable[str | None], model: nn.Module, inputs: Tensor,
                  targets: Tensor | None, **options) -> dict[str, str]:
    """:func:`zero_factors` when one of the layers' ``problems``
    (:func:`actfim.spectrum.layer_problem`) is a zero factor, else nothing: the reference
    passes run only then."""
    if not any(problem is not None and "(is zero)" in problem for problem in problems):
        return {}
    return zero_factors(model, inputs, targets, **options)


def leave_out(layers: list[L], zero: dict[str, str]) -> tuple[list[L], list[SilentLayer]]:
    """``layers`` without the silent ones (``zero``: :func:`silent_layers`), and those."""
    kept = [layer for layer in layers if layer.name not in zero]
    silent = [SilentLayer(name=layer.name, kind=layer.kind, num_weights=layer.num_weights,
                          why=WHY[zero[layer.name]]) for layer in layers if layer.name in zero]
    return kept, silent
