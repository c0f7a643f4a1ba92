"""The model a command names: act's zoo, torchvision, timm, or the user's own code.

``--model`` takes

- a registered model (``allcnnc``, ``resnet56``: any plugin's ``act_models``), built with
  the activation at every site;
- a torchvision classification model, ``resnet18`` or ``torchvision:resnet18``;
- a timm model, ``timm:convnext_atto`` (timm installed);
- ``package.module:callable``: the user's own factory, called with ``num_classes=`` and
  ``input_shape=`` when it takes those arguments.

Outside models are built untrained (no downloaded weights) and keep their own activations
unless one is given: then every activation of the kinds ``replace`` names (ReLU by default)
becomes a fresh module of that expression.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable

from torch import nn

from actcore.activation_kinds import (
    DEFAULT_KINDS,
    KindSpec,
    describe_found,
    find_activations,
    swap_modules,
)
from actcore.compile import to_module
from actcore.errors import ActError, UnknownNameError
from actcore.expr import parse
from actcore.plugins import MODELS, Registry, registry
from actcore.versions import install_hint


def build_model(
    name: str,
    activation: str | Callable[[], nn.Module] | None,
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    replace: KindSpec = DEFAULT_KINDS,
) -> nn.Module:
    """A fresh model named ``name`` (see the module doc) with ``activation`` (an expression
    or a factory of modules) in it."""
    models = _zoo()
    if ":" not in name and name in models:
        if activation is None:
            raise ActError(f"model {name!r} is built around an activation: give one")
        return models.get(name).build(activation, input_shape, num_classes)
    model = _outside_model(name, input_shape, num_classes, known=models.names())
    if activation is not None:
        if isinstance(activation, str):
            expr = parse(activation)
            activation = lambda: to_module(expr)  # noqa: E731
        sites = find_activations(model, replace)
        if not sites:
            raise ActError(f"{name} has no activation of the kinds {replace} to replace "
                           f"(it has {describe_found(model)}); name the kinds to replace "
                           f"with --replace")
        swap_modules(model, {site: activation() for site in sites})
    return model


def _zoo() -> Registry:
    """act's model zoo: the ``act_models`` kind (actbench's models, when it is installed
    and enabled; otherwise the zoo is empty)."""
    return registry(MODELS)


def _outside_model(name: str, input_shape: tuple[int, ...], num_classes: int,
                   known: list[str]) -> nn.Module:
    source, _, what = name.rpartition(":")
    if source == "timm":
        timm = _import("timm", "timm models need the timm package installed")
        options = dict(pretrained=False, num_classes=num_classes, in_chans=input_shape[0])
        try:
            try:  # models with position tables (CoAtNet, ViTs) are built for one size
                return timm.create_model(what, img_size=tuple(input_shape[1:]), **options)
            except TypeError:  # a model without an img_size argument fits any size
                return timm.create_model(what, **options)
        except RuntimeError as err:  # timm's "Unknown model"
            raise ActError(f"timm has no model {what!r}: {err}") from None
    if source in ("", "torchvision"):
        models = _import("torchvision.models", "torchvision models need torchvision")
        names = models.list_models(module=models)
        if what not in names:
            err = UnknownNameError("model", what, [*known, *names])
            if not known:
                raise ActError(f"{err}; act's own models (allcnnc, resnet56, ...) come with "
                               f"actbench: {install_hint('actbench')}") from None
            raise err
        if input_shape[0] != 3:
            raise ActError(f"torchvision's {what} takes 3-channel images, not input shape "
                           f"{input_shape}")
        return models.get_model(what, weights=None, num_classes=num_classes)
    if os.getcwd() not in sys.path:  # the user's own code, as `python -m` would find it
        sys.path.insert(0, os.getcwd())
    module = _import(source, f"cannot import {source!r} for --model {name}")
    factory = getattr(module, what, None)
    if not callable(factory):
        raise ActError(f"{source!r} has no callable {what!r} (--model {name})")
    model = _call(factory, num_classes, input_shape)
    if not isinstance(model, nn.Module):
        raise ActError(f"{name} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _call(factory: Callable, num_classes: int, input_shape: tuple[int, ...]) -> object:
    try:
        takes = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes = {}
    given = {"num_classes": num_classes, "input_shape": tuple(input_shape)}
    return factory(**{k: v for k, v in given.items() if k in takes})


def _import(module: str, why: str):
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ActError(f"{why} ({err})") from None
