"""Swap the activation modules of an existing model for learnable ones, in place."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable

import torch
from torch import nn

import actcore
from actcore.errors import ActError
from acthull.bases import expression
from acthull.hull import HullSpec

#: Element-wise hidden-layer activations replaced by default: torch's and actcore's
#: compiled expressions (as actbench's models use). ``nn.Sigmoid`` and ``nn.Softmax`` are
#: left out: they usually gate or normalise rather than activate.
HIDDEN_ACTIVATIONS: tuple[type[nn.Module], ...] = (
    actcore.Activation,
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU,
    nn.GELU, nn.SiLU, nn.Mish, nn.Tanh, nn.Softplus, nn.Softsign, nn.Hardswish,
    nn.Hardtanh, nn.Tanhshrink,
)

Spec = str | HullSpec | Callable[[], nn.Module]


def replace_activations(
    model: nn.Module,
    spec: Spec,
    *,
    types: tuple[type[nn.Module], ...] | None = HIDDEN_ACTIVATIONS,
    pattern: str | None = None,
    example_input: torch.Tensor | None = None,
) -> dict[str, nn.Module]:
    """Replace every matching activation module of ``model`` by a new one built from ``spec``.

    ``spec`` is an actcore expression (``"affine_n(identity(x),relu(x),tanh(x))"``, or an
    operator name such as ``"relu"``), a
    :class:`HullSpec`, or a zero-argument factory. Each replaced layer gets its own
    module, so its own parameters. A module matches when it is an instance of ``types``
    (``None``: any type) and its qualified name matches the glob ``pattern`` (if given),
    e.g. ``"features.*"``. Per-channel hulls learn the channel counts from one forward
    pass of ``example_input`` (run in eval mode, without gradients).

    Returns the replaced modules by qualified name. A module object registered under
    several names is replaced under each name by an independent one; a single module
    object called at several places of ``forward`` is one layer and stays shared.
    """
    if types is None and pattern is None:
        raise ActError("give the module types or a name pattern to replace (or both)")
    targets = {
        name: module
        for name, module in model.named_modules(remove_duplicate=False)
        if name
        and (types is None or isinstance(module, types))
        and (pattern is None or fnmatch.fnmatchcase(name, pattern))
    }
    if not targets:
        what = ", ".join(t.__name__ for t in types) if types else "any type"
        where = f" named like {pattern!r}" if pattern else ""
        raise ActError(f"no module of {what}{where} found in {type(model).__name__}")
    factory = _factory(spec)
    channels = _channels(model, targets, spec, example_input)
    built = {name: factory(channels.get(name)) for name in targets}  # all, then swap
    for name, module in built.items():
        parent_name, _, attr = name.rpartition(".")
        model.get_submodule(parent_name).add_module(attr, module)
    return targets


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
