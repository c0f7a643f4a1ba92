"""A memory-lean weighted sum of base functions: y = Σ c_i f_i(x).

Autograd would keep every f_i(x) (and the bases' own intermediates) alive until
backward: N activation-sized tensors per layer. :class:`WeightedSum` keeps only the
input ``x`` (plus the small coefficient tensor) and recomputes each base, one at a time,
in backward. Forward and backward therefore hold O(1) activation-sized temporaries,
whatever N is.

The bases must be fixed functions (no trainable parameters of their own): their
gradients are never returned. :class:`acthull.hull.Hull` falls back to plain autograd
when a base has parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

Base = Callable[[Tensor], Tensor]


def weighted_sum(x: Tensor, coefficients: Tensor, bases: Sequence[Base]) -> Tensor:
    """Σ_i coefficients[i] * bases[i](x), with plain torch ops (autograd keeps every term).

    ``coefficients`` has one leading entry per base and then broadcasts against ``x``.
    The fused :class:`WeightedSum` computes exactly the same operations in the same order,
    so both give bit-identical outputs.
    """
    out = torch.mul(bases[0](x), coefficients[0])
    for coefficient, base in zip(coefficients[1:], bases[1:]):
        out = out + torch.mul(base(x), coefficient)
    return out


class WeightedSum(torch.autograd.Function):
    """``weighted_sum`` whose backward recomputes the bases from the saved input."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, coefficients: Tensor, bases: tuple[Base, ...]) -> Tensor:
        ctx.bases = bases
        ctx.save_for_backward(x, coefficients)
        out = torch.mul(bases[0](x), coefficients[0])
        for coefficient, base in zip(coefficients[1:], bases[1:]):
            out.add_(torch.mul(base(x), coefficient))
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        x, coefficients = ctx.saved_tensors
        need_x, need_c = ctx.needs_input_grad[:2]
        # Dimensions of x a coefficient is shared over (all of them for one per layer).
        shared = [d for d, size in enumerate(coefficients.shape[1:]) if size == 1]
        acc = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        grad_x: Tensor | None = None
        grad_c: list[Tensor] = []
        for coefficient, base in zip(coefficients, ctx.bases):
            with torch.enable_grad():
                leaf = x.detach().requires_grad_(need_x)
                value = base(leaf)
            if need_c:
                product = grad * value
                if shared:
                    product = torch.sum(product, dim=shared, keepdim=True, dtype=acc)
                grad_c.append(product.to(coefficients.dtype))
            if need_x:
                if value.requires_grad:
                    (term,) = torch.autograd.grad(value, leaf, grad * coefficient)
                else:  # a constant base (e.g. zero(x)) has no gradient
                    term = torch.zeros_like(x)
                grad_x = term if grad_x is None else grad_x.add_(term)
            del value, leaf
        return grad_x, torch.stack(grad_c) if need_c else None, None
