"""Activation call sites of a model, found and separated with torch.fx.

Module swapping sees modules only: a ``forward`` that calls ``F.relu`` keeps its ReLU, and
one ReLU module called at three places is one layer. Tracing the model shows every call;
:func:`separate_call_sites` rewrites the graph so that each activation call, module or
functional, is a module of its own, which the module road can then replace.
"""

from __future__ import annotations

import copy

from torch import fx, nn

from actcore.activation_kinds import (
    KINDS,
    Functional,
    KindSpec,
    kind_of_call,
    kind_of_module,
    kinds_of,
    selector,
)
from actcore.errors import ActError


class _Tracer(fx.Tracer):
    """Keeps every activation module (and ``leaves``) whole: their insides are not calls
    of the model."""

    def __init__(self, leaves: tuple[type[nn.Module], ...] = ()):
        super().__init__()
        self.leaves = leaves

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return (isinstance(module, self.leaves) or kind_of_module(module) is not None
                or super().is_leaf_module(module, qualified_name))


def trace(model: nn.Module, leaves: tuple[type[nn.Module], ...] = ()) -> fx.GraphModule:
    """``model`` as a GraphModule; an ActError names why when it cannot be traced."""
    try:
        graph = _Tracer(leaves).trace(model)
    except Exception as err:
        raise ActError(
            f"{type(model).__name__} cannot be traced with torch.fx ({type(err).__name__}: "
            f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}); replace its "
            "activation modules instead"
        ) from None
    return fx.GraphModule(model, graph, type(model).__name__)


def functional_calls(model: nn.Module, spec: KindSpec = tuple(KINDS),
                     leaves: tuple[type[nn.Module], ...] = ()) -> list[str] | None:
    """The functional activation calls of ``model``'s forward (``layer1.relu``: a call of
    F.relu inside ``layer1``), or None when the model cannot be traced."""
    kinds, _ = kinds_of(spec)
    try:
        graph = trace(model, leaves).graph
    except ActError:
        return None
    return [f"{_scope(node) + '.' if _scope(node) else ''}{node.name}"
            for node in graph.nodes if kind_of_call(node.op, node.target, kinds)]


def separate_call_sites(model: nn.Module, spec: KindSpec,
                        leaves: tuple[type[nn.Module], ...] = ()) -> fx.GraphModule:
    """A traced copy of ``model`` in which every call of an activation of the kinds
    ``spec`` names is its own module: a module called at k places becomes k modules (the
    first keeps its name, the others get ``_1``, ``_2``...), a functional call becomes a
    :class:`Functional` module named after its call in the enclosing module."""
    kinds, _ = kinds_of(spec)
    chosen = selector(spec)
    traced = trace(model, leaves)
    seen: set[str] = set()
    for node in list(traced.graph.nodes):
        if node.op == "call_module":
            module = traced.get_submodule(node.target)
            if not chosen(module):
                continue
            if node.target in seen:
                _call_own_module(traced, node, node.target, copy.deepcopy(module))
            seen.add(node.target)
        else:
            kind = kind_of_call(node.op, node.target, kinds)
            if kind is None:
                continue
            tensors = [a for a in node.args[1:] if isinstance(a, fx.Node)]
            if not node.args or tensors or any(isinstance(v, fx.Node)
                                               for v in node.kwargs.values()):
                continue  # not an element-wise call of one tensor
            kwargs = {k: v for k, v in node.kwargs.items() if k != "inplace"}
            module = Functional(kind, node.target, tuple(node.args[1:]), kwargs)
            scope = _scope(node)
            _call_own_module(traced, node, f"{scope}.{kind}" if scope else kind, module)
    traced.graph.lint()
    traced.recompile()
    return traced


def _scope(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    return next(reversed(stack.values()))[0] if stack else ""


def _call_own_module(traced: fx.GraphModule, node: fx.Node, wanted: str,
                     module: nn.Module) -> None:
    name, k = wanted, 0
    while _exists(traced, name):
        k += 1
        name = f"{wanted}_{k}"
    parent, _, attr = name.rpartition(".")
    traced.get_submodule(parent).add_module(attr, module)
    with traced.graph.inserting_before(node):
        call = traced.graph.call_module(name, (node.args[0],))
    node.replace_all_uses_with(call)
    traced.graph.erase_node(node)


def _exists(traced: fx.GraphModule, name: str) -> bool:
    try:
        traced.get_submodule(name)
    except AttributeError:
        return False
    return True

