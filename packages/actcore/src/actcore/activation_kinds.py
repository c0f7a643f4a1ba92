"""Which parts of a PyTorch model are activation functions, by kind.

A kind is the function a layer computes (``relu``, ``gelu``, ...). Each kind lists the
module classes that compute it, torch's and timm's (timm ships its own ``GELU``, ``Swish``,
``HardSwish``... that do not subclass torch's), and the functional calls that compute it
(``F.relu``, ``torch.tanh``, ``x.relu()``), which a model's ``forward`` may use instead of
a module. Registries of this shape follow timm's activation factory: one table from a
name to the implementations.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from actcore.compile import Activation
from actcore.errors import UnknownNameError


@dataclass(frozen=True)
class Kind:
    """One activation function as modules and as calls."""

    name: str
    modules: tuple[type[nn.Module], ...] = ()
    timm: tuple[str, ...] = ()  # class names in timm.layers (matched without importing timm)
    functions: tuple[object, ...] = ()  # call_function targets
    methods: tuple[str, ...] = ()  # Tensor methods (x.relu())


KINDS: dict[str, Kind] = {k.name: k for k in [
    Kind("relu", (nn.ReLU,), (), (F.relu, F.relu_, torch.relu, torch.relu_), ("relu", "relu_")),
    Kind("relu6", (nn.ReLU6,), (), (F.relu6,)),
    Kind("leaky_relu", (nn.LeakyReLU,), (), (F.leaky_relu, F.leaky_relu_)),
    Kind("prelu", (nn.PReLU,), ("PReLU",), (F.prelu,)),
    Kind("rrelu", (nn.RReLU,), (), (F.rrelu,)),
    Kind("elu", (nn.ELU,), (), (F.elu, F.elu_)),
    Kind("selu", (nn.SELU,), (), (F.selu, torch.selu)),
    Kind("celu", (nn.CELU,), (), (F.celu,)),
    Kind("gelu", (nn.GELU,), ("GELU", "GELUTanh", "QuickGELU"), (F.gelu,)),
    Kind("silu", (nn.SiLU,), ("Swish", "SwishMe"), (F.silu,)),
    Kind("mish", (nn.Mish,), ("Mish", "MishMe"), (F.mish,)),
    Kind("hardswish", (nn.Hardswish,), ("HardSwish", "HardSwishMe"), (F.hardswish,)),
    Kind("tanh", (nn.Tanh,), ("Tanh",), (torch.tanh, F.tanh), ("tanh", "tanh_")),
    Kind("softplus", (nn.Softplus,), (), (F.softplus,)),
    Kind("softsign", (nn.Softsign,), (), (F.softsign,)),
    Kind("hardtanh", (nn.Hardtanh,), (), (F.hardtanh, F.hardtanh_)),
    Kind("tanhshrink", (nn.Tanhshrink,), (), (F.tanhshrink,)),
    Kind("sigmoid", (nn.Sigmoid,), ("Sigmoid",), (torch.sigmoid, F.sigmoid),
         ("sigmoid", "sigmoid_")),
    Kind("hardsigmoid", (nn.Hardsigmoid,), ("HardSigmoid", "HardSigmoidMe"), (F.hardsigmoid,)),
    Kind("expression", (Activation,)),  # act's own compiled activation functions
]}

#: What ``replace_activations`` swaps unless told otherwise: ReLU, the activation a user
#: means by "the activation" of a CNN, and act's own compiled activations.
DEFAULT_KINDS: tuple[str, ...] = ("relu", "expression")
#: Every element-wise hidden-layer activation; the gates (sigmoid, hardsigmoid) are left
#: out because they scale other tensors (squeeze-excitation, LSTM gates) rather than activate.
HIDDEN_KINDS: tuple[str, ...] = tuple(k for k in KINDS if k not in ("sigmoid", "hardsigmoid"))

KindSpec = str | type[nn.Module] | Iterable[str | type[nn.Module]]


def kinds_of(spec: KindSpec) -> tuple[list[Kind], tuple[type[nn.Module], ...]]:
    """The kinds (by name, ``"hidden"`` for all hidden ones, ``"all"``) and the extra module
    classes a user's choice names."""
    items = [spec] if isinstance(spec, str | type) else list(spec)
    kinds: list[Kind] = []
    classes: list[type[nn.Module]] = []
    for item in items:
        if isinstance(item, type) and issubclass(item, nn.Module):
            classes.append(item)
        elif item == "hidden":
            kinds += [KINDS[k] for k in HIDDEN_KINDS]
        elif item == "all":
            kinds += list(KINDS.values())
        elif isinstance(item, str) and item in KINDS:
            kinds.append(KINDS[item])
        else:
            raise UnknownNameError("activation kind", str(item), [*KINDS, "hidden", "all"])
    return kinds, tuple(classes)


def kind_of_module(module: nn.Module, kinds: Iterable[Kind] = KINDS.values()) -> str | None:
    """The kind of ``module`` among ``kinds``, or None."""
    if isinstance(module, Functional):
        return module.kind if any(k.name == module.kind for k in kinds) else None
    cls = type(module)
    from_timm = cls.__module__.startswith("timm.")
    for kind in kinds:
        if isinstance(module, kind.modules) or (from_timm and cls.__name__ in kind.timm):
            return kind.name
    return None


def selector(spec: KindSpec) -> Callable[[nn.Module], bool]:
    """Whether a module is an activation of the kinds (or classes) ``spec`` names; the
    spec is read once (an unknown kind is an error here), then applied to every module."""
    kinds, classes = kinds_of(spec)
    return lambda module: isinstance(module, classes) or kind_of_module(module, kinds) is not None


def kind_of_call(op: str, target: object, kinds: Iterable[Kind] = KINDS.values()) -> str | None:
    """The kind of a traced call (torch.fx node ``op`` and ``target``), or None."""
    for kind in kinds:
        if (op == "call_function" and any(target is f for f in kind.functions)) or (
            op == "call_method" and target in kind.methods
        ):
            return kind.name
    return None


def find_activations(model: nn.Module, spec: KindSpec | None,
                     pattern: str | None = None) -> dict[str, nn.Module]:
    """The activation modules of the kinds ``spec`` names (None: any module), by every
    qualified name they are registered under, optionally only names matching the glob
    ``pattern``."""
    chosen = None if spec is None else selector(spec)
    return {
        name: module
        for name, module in model.named_modules(remove_duplicate=False)
        if name
        and (chosen is None or chosen(module))
        and (pattern is None or fnmatch.fnmatchcase(name, pattern))
    }


def swap_modules(model: nn.Module, modules: dict[str, nn.Module]) -> None:
    """Put each new module in ``model`` under its qualified name."""
    for name, module in modules.items():
        parent, _, attr = name.rpartition(".")
        model.get_submodule(parent).add_module(attr, module)


class Functional(nn.Module):
    """A functional activation call (``F.relu(x)``) turned into a module of its own, so it
    can be found and replaced like one."""

    def __init__(self, kind: str, function: object, rest: tuple = (), kwargs: dict | None = None):
        super().__init__()
        self.kind = kind
        self.function = function
        self.rest = rest
        self.kwargs = dict(kwargs or {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.function, str):
            return getattr(x, self.function)(*self.rest, **self.kwargs)
        return self.function(x, *self.rest, **self.kwargs)

    def extra_repr(self) -> str:
        return getattr(self.function, "__name__", str(self.function))


def describe_found(model: nn.Module) -> str:
    """The activation modules of ``model`` by kind, e.g. ``gelu x12, hardswish x3``."""
    counts: dict[str, int] = {}
    for module in model.modules():
        kind = kind_of_module(module)
        if kind is not None:
            counts[kind] = counts.get(kind, 0) + 1
    if not counts:
        return "no activation modules"
    return ", ".join(f"{kind} x{n}" for kind, n in counts.items())
