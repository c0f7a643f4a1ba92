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

The reference is free of every activation, however it is written: act's and torch's
activation modules are swapped, and activation *calls* (``F.relu(x)`` in a ``forward``,
the ``F.hardshrink`` inside ``nn.Hardshrink``) compute ``x + shift`` while it runs. A
layer is left out only where its factor is zero in the real model too (for every function
of a stacked pass), so a reference that fails for reasons of its own (logits so large
without the activations that the softmax's gradient underflows: it then has zero factors
where the model has none, and decides nothing) never hides a healthy layer, and a
non-finite factor is never forgiven.

Silent layers are left out of the spectrum and its CDF features (they have no curvature
to describe, for any function), named with the reason; since they depend only on the
model, the feature length stays fixed for a given model. The reference passes run only
when some layer's factor is zero, so models without one pay nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TypeVar

from pydantic import BaseModel
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from actcore.activation_kinds import KINDS, kind_of_module, swap_modules
from actcore.errors import ActError
from actcore.stacked import StackedActivation
from actfim.factors import kfac_factors
from actfim.options import FisherOptions
from actfim.problems import LayerProblem

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
          options: FisherOptions) -> dict[str, set[str]]:
    """Per layer, its factors that are zero in the reference; nothing when the reference
    cannot be computed (then no layer is called silent)."""
    try:
        with _ActivationCalls(shift):
            factors, _, _ = kfac_factors(reference_model(model, shift), inputs, targets,
                                         options)
    except ActError:
        raise
    except Exception:  # e.g. an output that is not finite without the activations
        return {}
    return {layer.name: {which for which, factor in (("G", layer.g), ("A", layer.a))
                         if not bool(factor.any())} for layer in factors}


#: the element-wise activation calls a reference computes as ``x + shift``: torch's
#: functional forms and tensor methods of every kind act knows, and the few element-wise
#: ones it has no kind for (the forwards of ``nn.Hardshrink``, ``nn.Threshold``, ...)
_CALLS = frozenset(
    {getattr(f, "__name__", str(f)) for k in KINDS.values() for f in k.functions}
    | {m for k in KINDS.values() for m in k.methods}
    | {"hardshrink", "softshrink", "threshold", "_threshold", "threshold_", "logsigmoid",
       "rrelu_"}
)


class _ActivationCalls(TorchFunctionMode):
    """While active, every activation *call* (``F.relu(x)`` in a ``forward``, the
    ``F.hardshrink`` inside ``nn.Hardshrink``) computes ``x + shift``, as the reference's
    swapped modules do: a reference is then free of every activation, however it is
    written, and the activation under test can never be what silences it."""

    def __init__(self, shift: float) -> None:
        super().__init__()
        self.shift = shift

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") not in _CALLS or not args:
            return func(*args, **(kwargs or {}))
        x = args[0]
        if func.__name__.endswith("_") or (kwargs or {}).get("inplace"):
            return x.add_(self.shift) if self.shift else x
        return x + self.shift if self.shift else x


class Silence(BaseModel):
    """The outcome of the silent-layer rule: the layers left out (name -> the factor, "G"
    or "A", that no activation function makes non-zero), and why the rule could not be
    applied, when it could not."""

    zero: dict[str, str] = {}
    note: str | None = None


def zero_factors(model: nn.Module, inputs: Tensor, targets: Tensor | None,
                 zeros: Sequence[dict[str, frozenset[str]]],
                 options: FisherOptions) -> Silence:
    """The silent layers of ``model`` given each function's zero factors per layer
    (``zeros``): a layer whose factor is zero for every function and in the references
    too (``options`` as the real model's, :func:`actfim.kfac_factors`). A reference with a
    zero factor where a function has none is not a bound on what activations can reach
    (its outputs saturate without them): then it decides nothing."""
    candidates = {name: [z[name] for z in zeros] for name in zeros[0]
                  if all(z.get(name) for z in zeros)}  # fmt: skip
    identity = _zero(model, 0.0, inputs, targets, options)
    shifted = _zero(model, 1.0, inputs, targets, options) if any(
        "A" in z for zs in candidates.values() for z in zs) else {}
    wrong = sorted({name for ref in (identity, shifted) for name, factors in ref.items()
                    for factor in factors if not all(factor in z.get(name, ()) for z in zeros)})
    if wrong:
        return Silence(note="act cannot tell whether the architecture or the activation "
                            "function zeroes these factors: its reference (identity "
                            "activations) has zero factors where this model has none (layers "
                            f"{', '.join(map(repr, wrong))}; its outputs saturate)")
    silent = {}
    for name, zs in candidates.items():
        if all("G" in z for z in zs) and "G" in identity.get(name, ()):
            silent[name] = "G"
        elif all("A" in z for z in zs) and "A" in identity.get(name, ()) and \
                "A" in shifted.get(name, ()):
            silent[name] = "A"
    return Silence(zero=silent)


def silent_layers(problems: Sequence[dict[str, LayerProblem | None]], model: nn.Module,
                  inputs: Tensor, targets: Tensor | None,
                  options: FisherOptions | None = None) -> Silence:
    """The layers to leave out, given each function's ``problems`` per layer (one dict per
    function of the pass). A layer can be left out only where every function's factor is
    zero (never one with a non-zero or non-finite factor), and only when the references
    agree. The reference passes run only when some layer is zero for every function."""
    if not problems:
        return Silence()
    zeros = [{name: p.zero if p is not None and p.kind == "zero" else frozenset()
              for name, p in fn.items()} for fn in problems]  # fmt: skip
    if not any(all(z.get(name) for z in zeros) for name in zeros[0]):
        return Silence()
    return zero_factors(model, inputs, targets, zeros, options or FisherOptions())


def leave_out(layers: list[L], zero: dict[str, str]) -> tuple[list[L], list[SilentLayer]]:
    """``layers`` without the silent ones (``zero``: :attr:`Silence.zero`), and those."""
    kept = [layer for layer in layers if layer.name not in zero]
    silent = [SilentLayer(name=layer.name, kind=layer.kind, num_weights=layer.num_weights,
                          why=WHY[zero[layer.name]]) for layer in layers if layer.name in zero]
    return kept, silent
