"""Swap the activation functions of an existing model for learnable ones.

:func:`replace_activations` swaps modules in place. What it cannot see, it says: a
``forward`` that calls ``F.relu`` keeps those calls (a warning counts them), and a module
called at several places stays one layer. :func:`replace_call_sites` reaches both through
torch.fx, returning a traced copy where every call site has its own activation.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import fx, nn

import actcore
from actcore.activation_kinds import (
    DEFAULT_KINDS,
    HIDDEN_KINDS,
    KindSpec,
    describe_found,
    find_activations,
    swap_modules,
)
from actcore.call_sites import functional_calls, separate_call_sites
from actcore.errors import ActError
from acthull.bases import expression
from acthull.hull import Hull, HullSpec

__all__ = ["DEFAULT_KINDS", "HIDDEN_KINDS", "UnreplacedActivationWarning",
           "replace_activations", "replace_call_sites"]

Spec = str | HullSpec | Callable[[], nn.Module]


class UnreplacedActivationWarning(UserWarning):
    """A model computes activations that :func:`replace_activations` could not swap."""


def replace_activations(
    model: nn.Module,
    spec: Spec,
    *,
    types: KindSpec | None = DEFAULT_KINDS,
    pattern: str | None = None,
    example_input: torch.Tensor | None = None,
) -> dict[str, nn.Module]:
    """Replace every matching activation module of ``model`` by a new one built from ``spec``.

    ``spec`` is an actcore expression (``"affine_n(identity(x),relu(x),tanh(x))"``, or an
    operator name such as ``"relu"``), a :class:`HullSpec`, or a zero-argument factory.
    Each replaced layer gets its own module, so its own parameters.

    ``types`` says which activations to replace: kind names (``"relu"``, ``"gelu"``,
    ``"silu"``..., torch's and timm's classes alike), ``"hidden"`` (every element-wise
    hidden activation, not the sigmoid gates), module classes, or ``None`` (any module,
    with ``pattern``). The default, ``("relu", "expression")``, is ReLU and act's own
    compiled activations: a GELU in attention or a Hardswish in a MobileNet stays unless
    asked for. ``pattern`` is a glob over qualified names (``"features.*"``). Per-channel
    hulls learn the channel counts from one forward pass of ``example_input`` (eval mode,
    no gradients).

    Returns the replaced modules by qualified name. A module registered under several names
    is replaced under each name by an independent one; a module called at several places
    of ``forward`` is one layer and stays shared (:func:`replace_call_sites` separates
    them). Functional calls of the chosen kinds (``F.relu(x)``) are left as they are, with
    an :class:`UnreplacedActivationWarning` that counts them.
    """
    if types is None and pattern is None:
        raise ActError("give the module types or a name pattern to replace (or both)")
    factory = _factory(spec)  # fail early on a bad spec, before touching the model
    targets = find_activations(model, types, pattern)
    if not targets:
        what = "any type" if types is None else (
            types if isinstance(types, str) else ", ".join(
                getattr(t, "__name__", str(t)) for t in types))
        where = f" named like {pattern!r}" if pattern else ""
        raise ActError(
            f"no activation of {what}{where} found in {type(model).__name__} (it has "
            f"{describe_found(model)}); choose with types=, e.g. types='hidden'"
        )
    channels = _channels(model, targets, spec, example_input)
    swap_modules(model, {name: factory(channels.get(name)) for name in targets})
    if types is not None and pattern is None:
        _warn_functional(model, types)
    return targets


def replace_call_sites(
    model: nn.Module,
    spec: Spec,
    *,
    types: KindSpec = DEFAULT_KINDS,
    example_input: torch.Tensor | None = None,
) -> fx.GraphModule:
    """A traced copy of ``model`` (torch.fx) with one new activation per call site.

    Every call of an activation of ``types`` gets its own module built from ``spec``: a
    ReLU module that ``forward`` calls twice becomes two hulls, and functional calls
    (``F.relu``, ``torch.tanh``, ``x.relu()``) are replaced too. ``model`` itself is left
    unchanged. Needs a model torch.fx can trace (no data-dependent control flow).
    """
    traced = separate_call_sites(model, types, leaves=(Hull,))
    replace_activations(traced, spec, types=types, example_input=example_input)
    return traced


def _warn_functional(model: nn.Module, types: KindSpec) -> None:
    calls = functional_calls(model, types, leaves=(Hull,))
    if calls:
        shown = ", ".join(calls[:5]) + (", ..." if len(calls) > 5 else "")
        warnings.warn(
            f"{len(calls)} functional activation call(s) in {type(model).__name__}.forward "
            f"were not replaced ({shown}); acthull.replace_call_sites(model, spec) replaces "
            "them through torch.fx",
            UnreplacedActivationWarning,
            stacklevel=3,
        )


def _factory(spec: Spec) -> Callable[[int | None], nn.Module]:
    if isinstance(spec, HullSpec):
        return spec.build
    if isinstance(spec, str):
        text = expression(spec)  # fail early, before touching the model; relu -> relu(x)
        return lambda _: actcore.to_module(text)
    if callable(spec):
        return lambda _: _module_from(spec)
    raise ActError(
        f"spec must be an expression, a HullSpec or a module factory, got {type(spec).__name__}"
    )


def _shape(value: object) -> object:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def _module_from(factory: Callable[[], nn.Module]) -> nn.Module:
    module = factory()
    if not isinstance(module, nn.Module):
        name = getattr(factory, "__name__", type(factory).__name__)
        raise ActError(
            f"the activation factory {name!r} returned {type(module).__name__}, "
            "not a torch.nn.Module"
        )
    return module


def _channels(
    model: nn.Module,
    targets: dict[str, nn.Module],
    spec: Spec,
    example_input: torch.Tensor | None,
) -> dict[str, int]:
    """Channel count of each target's input, by running ``example_input`` once."""
    if not (isinstance(spec, HullSpec) and spec.granularity == "channel"):
        return {}
    if example_input is None:
        raise ActError("per-channel hulls need example_input to learn each layer's channels")
    shapes: dict[str, torch.Size] = {}
    by_module: dict[int, list[str]] = {}
    for name, module in targets.items():
        by_module.setdefault(id(module), []).append(name)

    def record(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        for name in by_module[id(module)]:
            shapes.setdefault(name, args[0].shape)

    handles = [m.register_forward_pre_hook(record) for m in {id(m): m for m in targets.values()}
               .values()]
    training = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            model(example_input)
    except Exception as err:
        raise ActError(
            f"the model cannot run example_input of shape {_shape(example_input)} "
            f"({type(err).__name__}: {err}); give a batch the model accepts"
        ) from None
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in training.items():
            module.training = mode
    channels = {}
    for name in targets:
        if name not in shapes:
            raise ActError(f"module {name!r} was not called by forward(example_input)")
        shape = shapes[name]
        if not -len(shape) <= spec.channel_dim < len(shape):
            raise ActError(
                f"module {name!r}: input of shape {tuple(shape)} has no channel dimension "
                f"{spec.channel_dim}"
            )
        channels[name] = shape[spec.channel_dim]
    return channels
