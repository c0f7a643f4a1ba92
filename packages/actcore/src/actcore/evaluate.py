"""Batched evaluation of many functions on shared inputs.

:func:`evaluate` merges the expressions into one DAG, so a sub-expression such as
``relu(x)`` is computed once however many functions use it, and applies each operator
once per tree level to all the nodes that need it.

Inputs are padded to a multiple of :data:`ROW_ALIGN` elements. torch's CPU kernels use
SIMD for most of a row and scalar code for a short tail, and the two may differ in the
last bit; with aligned rows every element takes the same path, so a function's outputs
are bit-identical whatever else is evaluated with it.

:func:`exact_outputs` is what equivalence compares: float64 evaluation rounded to float32.
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

    The default is the sample that defines equivalence; other ``n`` give the
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
    x = _check(x)
    values, roots, _ = _run([parse(f) for f in functions], pad(x))
    return values[roots, : len(x)]


@torch.no_grad()
def exact_outputs(
    functions: Sequence[str | Expr], x: Tensor | None = None
) -> tuple[Tensor, np.ndarray]:
    """What equivalence compares: each function's exact values rounded to float32.

    The functions are evaluated in float64 at the float32 points ``x`` (default
    :func:`sample_points`) and rounded once, so the ulp-level differences between
    float32 kernels of different CPUs, libraries and devices do not reach the result.
    Also returns, per function, whether a float32 network would meet a non-finite value:
    whether any of its sub-expressions (itself included), rounded to float32, is inf or
    NaN at some point.
    """
    x = _check(x).to(torch.float32)
    values, roots, sub_nonfinite = _run(
        [parse(f) for f in functions], pad(x).double(), track=len(x)
    )
    return round_to_float32(values[roots, : len(x)]), sub_nonfinite[roots.cpu().numpy()]


# float64 keeps 29 more mantissa bits than float32; a value whose low 29 bits lie within
# _TIE_WINDOW of 2**28 is (nearly) halfway between two float32 numbers
_LOW_BITS = (1 << 29) - 1
_HALFWAY = 1 << 28
_TIE_WINDOW = 1 << 16  # float64 ulps: 2**-13 of a float32 ulp, 2**-36 relative


def round_to_float32(values: Tensor) -> Tensor:
    """float64 ``values`` rounded to float32, the same on every machine.

    Exact arithmetic on float32 points often lands exactly halfway between two float32
    numbers (``1 + x`` needs 25 bits), where another kernel's float64 result one ulp
    away would round the other way. So a value within 2**-13 of a float32 ulp of
    halfway counts as halfway and rounds to even; every other value rounds to nearest.
    The window is 2**16 float64 ulps wide, far wider than kernels differ, and the answer
    differs from plain rounding only where the exact value is within 2**-36 (relative)
    of a tie.
    """
    bits = np.ascontiguousarray(values.detach().cpu().numpy()).view(np.int64)
    # (low bits − 2**28 + window) lies in [0, 2 window] exactly for near-ties
    offset = bits + (_TIE_WINDOW - _HALFWAY)  # numpy: torch's int64 bit ops are 10x slower
    np.bitwise_and(offset, _LOW_BITS, out=offset)
    near = offset <= 2 * _TIE_WINDOW
    offset -= _TIE_WINDOW
    offset *= near
    with np.errstate(over="ignore"):  # beyond float32's range is inf, as it should be
        snapped = (bits - offset).view(np.float64).astype(np.float32)  # low bits := 2**28
    return torch.from_numpy(snapped).to(values.device)


def _check(x: Tensor | None) -> Tensor:
    x = sample_points() if x is None else torch.as_tensor(x)
    if x.dim() != 1:
        raise ActError(f"x must be one-dimensional, got shape {tuple(x.shape)}")
    return x


def _run(
    exprs: list[Expr], row: Tensor, track: int = 0
) -> tuple[Tensor, Tensor, np.ndarray]:
    """Every distinct sub-expression of ``exprs`` on ``row``, level by level: the values,
    each expression's row and, with ``track`` (the points that count), per row whether
    it or a sub-expression is non-finite in float32."""
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
    nonfinite = np.zeros(len(slots), dtype=bool)
    if track:
        rounded = round_to_float32(values[:, :track])
        nonfinite = ~torch.isfinite(rounded).all(dim=1).cpu().numpy()
        for level in levels:  # children come first: propagate their flags upwards
            for node in level:
                for arg in node.args:
                    nonfinite[slots[node]] |= nonfinite[slots[arg]]
    roots = torch.tensor([slots[e] for e in exprs], dtype=torch.long, device=row.device)
    return values, roots, nonfinite
