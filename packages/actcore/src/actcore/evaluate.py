"""Batched evaluation of many functions on shared inputs.

:func:`evaluate` merges the expressions into one DAG, so a sub-expression such as
``relu(x)`` is computed once however many functions use it, and applies each operator
once per tree level to all the nodes that need it.

Inputs are padded to a multiple of :data:`ROW_ALIGN` elements. torch's CPU kernels use
SIMD for most of a row and scalar code for a short tail, and the two may differ in the
last bit; with aligned rows every element takes the same path, so a function's outputs
are bit-identical whatever else is evaluated with it (equivalence relies on this).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from actcore.errors import ActError
from actcore.expr import Expr, get_operator, parse

SAMPLE_SIZE = 1000
SAMPLE_SEED = 0
SAMPLE_CLIP = 5.0
ROW_ALIGN = 64


def sample_points(
    n: int = SAMPLE_SIZE,
    seed: int = SAMPLE_SEED,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """``n`` fixed points x ~ N(0,1) clipped to [-5, 5] (numpy PCG64 stream of ``seed``).

    The default is the sample that defines equivalence (SPEC.md); other ``n`` give the
    "outputs on n fixed N(0,1) samples" features.
    """
    if n < 1:
        raise ActError(f"need at least one sample point, got n={n}")
    points = np.random.default_rng(seed).standard_normal(n).clip(-SAMPLE_CLIP, SAMPLE_CLIP)
    return torch.as_tensor(points, dtype=dtype, device=device)


def pad(x: Tensor) -> Tensor:
    """``x`` (1-D) zero-padded to a multiple of :data:`ROW_ALIGN` elements."""
    extra = -len(x) % ROW_ALIGN
    return torch.cat([x, x.new_zeros(extra)]) if extra else x


def operator_fn(name: str):
    """The torch function of a fixed operator; learnable ones have no fixed outputs."""
    op = get_operator(name)
    if op.fn is None:
        raise ActError(
            f"operator {name!r} is learnable; its outputs depend on parameters "
            "(evaluate a compiled module from actcore.to_module instead)"
        )
    return op.fn


@torch.no_grad()
def evaluate(functions: Sequence[str | Expr], x: Tensor | None = None) -> Tensor:
    """Outputs of every function on ``x`` (default :func:`sample_points`).

    Returns a tensor of shape ``(len(functions), len(x))`` with ``x``'s dtype and device.
    Shared sub-expressions are computed once. No autograd graph is recorded.
    """
    x = sample_points() if x is None else torch.as_tensor(x)
    if x.dim() != 1:
        raise ActError(f"x must be one-dimensional, got shape {tuple(x.shape)}")
    exprs = [parse(f) for f in functions]
    slots: dict[Expr, int] = {}  # each distinct sub-expression once: its row in `values`
    heights: list[int] = []
    levels: list[list[Expr]] = []  # levels[h]: nodes of height h; children come earlier

    def visit(node: Expr) -> int:
        if node in slots:
            return heights[slots[node]]
        height = 1 + max((visit(arg) for arg in node.args), default=-1)
        slots[node] = len(heights)
        heights.append(height)
        if height == len(levels):
            levels.append([])
        levels[height].append(node)
        return height

    for expr in exprs:
        visit(expr)
    row = pad(x)
    values = row.new_empty((len(slots), len(row)))
    for level in levels:
        groups: dict[tuple[str, int], list[Expr]] = {}
        for node in level:
            groups.setdefault((node.op, len(node.args)), []).append(node)
        for (op, arity), nodes in groups.items():
            out = torch.tensor([slots[n] for n in nodes], device=row.device)
            if arity == 0:
                values[out] = row
                continue
            args = [
                values[torch.tensor([slots[n.args[k]] for n in nodes], device=row.device)]
                for k in range(arity)
            ]
            values[out] = operator_fn(op)(*args)
    roots = torch.tensor([slots[e] for e in exprs], dtype=torch.long, device=row.device)
    return values[roots, : len(x)]
