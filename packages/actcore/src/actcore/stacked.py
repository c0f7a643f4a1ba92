"""Many activation functions as one module: function ``k`` acts on the ``k``-th block of
the batch (a *function pass*: ``K`` functions on one set of weights, for spectra; not a
training stack, where each function has its own weights: :mod:`actbench.stacking`).

Put in a model whose samples do not interact (no batch statistics), a batch of ``K``
copies of the same inputs then runs ``K`` networks with the same weights and different
activations in one forward and backward pass. The cost that matters is the number of
kernel calls, so functions are grouped by the shape of their expression tree, and in
each shape every node position applies each of its operators once, to all the blocks
that use it there: a few hundred calls for any number of functions of a search space,
instead of a few per function.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from actcore.errors import ActError
from actcore.evaluate import operator_fn
from actcore.expr import Expr, parse


def _shape(expr: Expr) -> str:
    """The tree's shape: operator arities, without their names."""
    if expr.is_input:
        return "x"
    return f"({','.join(_shape(arg) for arg in expr.args)})"


def _positions(expr: Expr) -> list[Expr]:
    """Nodes in post-order (children before parents): the same list index is the same
    node position in every expression of one shape."""
    out: list[Expr] = []
    for arg in expr.args:
        out += _positions(arg)
    out.append(expr)
    return out


class _ShapeGroup:
    """The functions of one tree shape: for each node position, which blocks apply
    which operator, and where each position's arguments sit."""

    def __init__(self, blocks: list[int], exprs: list[Expr]):
        self.blocks = torch.tensor(blocks)
        trees = [_positions(e) for e in exprs]
        first = trees[0]
        index = {id(node): i for i, node in enumerate(first)}
        self.children = [[index[id(a)] for a in node.args] for node in first]
        self.steps: list[list[tuple[str, Tensor]]] = []
        for p, node in enumerate(first):
            if node.is_input:
                self.steps.append([])
                continue
            by_op: dict[str, list[int]] = {}
            for row, tree in enumerate(trees):
                by_op.setdefault(tree[p].op, []).append(row)
            self.steps.append([(op, torch.tensor(rows)) for op, rows in by_op.items()])

    def __call__(self, x: Tensor) -> Tensor:
        """Outputs of the group's functions on ``x`` (one row per function)."""
        values: list[Tensor] = []
        for p, step in enumerate(self.steps):
            if not step:
                values.append(x)
                continue
            args = [values[c] for c in self.children[p]]
            if len(step) == 1:
                op, _ = step[0]
                values.append(operator_fn(op)(*args))
                continue
            pieces, order = [], []
            for op, rows in step:
                pieces.append(operator_fn(op)(*[a.index_select(0, rows) for a in args]))
                order.append(rows)
            inverse = torch.empty(len(x), dtype=torch.long)
            inverse[torch.cat(order)] = torch.arange(len(x))
            values.append(torch.cat(pieces).index_select(0, inverse.to(x.device)))
        return values[-1]


class StackedActivation(nn.Module):
    """``K`` activation functions; on a batch of ``K·B`` samples, function ``k`` is
    applied to samples ``k·B … (k+1)·B − 1``.

    With ``normalize``, every function is normalised as :class:`actcore.Activation` does
    (mean 0, variance 1 under N(0, 1)); a function that cannot be is an error here, so
    check with :func:`actcore.normalize.normalization` first.
    """

    def __init__(self, expressions: Sequence[str | Expr], normalize: bool = False):
        super().__init__()
        exprs = [parse(e) for e in expressions]
        if not exprs:
            raise ActError("a stacked activation needs at least one function")
        for expr in exprs:
            for node in expr.nodes():
                if node.args:
                    operator_fn(node.op)  # learnable operators: a clear error
        self.expressions = [str(e) for e in exprs]
        shapes: dict[str, list[int]] = {}
        for k, expr in enumerate(exprs):
            shapes.setdefault(_shape(expr), []).append(k)
        self._groups = [_ShapeGroup(blocks, [exprs[k] for k in blocks])
                        for blocks in shapes.values()]
        order = torch.cat([group.blocks for group in self._groups])
        self._inverse = torch.empty_like(order)
        self._inverse[order] = torch.arange(len(order))
        self._single = len(self._groups) == 1 and bool((order == self._inverse).all())
        self.normalized = bool(normalize)
        if self.normalized:
            from actcore.normalize import normalization

            moments = torch.tensor([normalization(e) for e in exprs], dtype=torch.float64)
            self.register_buffer("shift", moments[:, 0, None])
            self.register_buffer("scale", 1.0 / moments[:, 1, None])

    def __len__(self) -> int:
        return len(self.expressions)

    def forward(self, x: Tensor) -> Tensor:
        k = len(self.expressions)
        if x.shape[0] % k:
            raise ActError(f"a batch of {x.shape[0]} samples does not split into "
                           f"{k} equal blocks, one per stacked function")
        rows = x.reshape(k, -1)
        if self._single:
            out = self._groups[0](rows)
        else:
            device = x.device
            pieces = [group(rows.index_select(0, group.blocks.to(device)))
                      for group in self._groups]
            out = torch.cat(pieces).index_select(0, self._inverse.to(device))
        if self.normalized:
            out = (out - self.shift.to(out.dtype)) * self.scale.to(out.dtype)
        return out.reshape(x.shape)

    def extra_repr(self) -> str:
        more = f", {len(self) - 3} more" if len(self) > 3 else ""
        return ", ".join(self.expressions[:3]) + more
