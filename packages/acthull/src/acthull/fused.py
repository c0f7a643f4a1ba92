"""A memory-lean weighted sum of base functions: y = Σ c_i f_i(x).

Autograd would keep every f_i(x) (and the bases' own intermediates) alive until
backward: N activation-sized tensors per layer. :class:`WeightedSum` keeps only the
input ``x`` (plus the small coefficient tensor) and recomputes each base, one at a time,
in backward. Forward and backward therefore hold O(1) activation-sized temporaries,
whatever N is.

Backward needs ⟨grad, f_i(x)⟩ for each coefficient and grad · f_i'(x) for the input.
For common bases applied directly to ``x`` (identity, relu, tanh, sigmoid, swish) the
derivative comes from a table of torch's own backward kernels, so it costs one pass over
memory; any other base is differentiated by autograd on the recomputed value.

A hull with ``kernel="compiled"`` instead generates one fused loop for forward and one for backward
with ``torch.compile`` (once per base set, dynamic shapes): a pass or two over memory
instead of a few per base. It needs a working compiler toolchain and pays a one-off
compile time; outputs match the eager kernel to float rounding.

The bases must be fixed functions (no trainable parameters of their own): their
gradients are never returned. :class:`acthull.hull.Hull` falls back to plain autograd
when a base has parameters.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from actcore import operators
from actcore.compile import Apply, Input

Base = Callable[[Tensor], Tensor]
#: grad · f'(x), from the upstream gradient, the input and the value f(x).
Derivative = Callable[[Tensor, Tensor, Tensor], Tensor]

_aten = torch.ops.aten
_DERIVATIVES: dict[Callable[..., Tensor], Derivative] = {
    operators.identity: lambda grad, x, fx: grad,
    torch.relu: lambda grad, x, fx: _aten.threshold_backward(grad, x, 0),
    torch.tanh: lambda grad, x, fx: _aten.tanh_backward(grad, fx),
    torch.sigmoid: lambda grad, x, fx: _aten.sigmoid_backward(grad, fx),
    F.silu: lambda grad, x, fx: _aten.silu_backward(grad, x),
}
#: Positively homogeneous bases, f(x) = f'(x)·x: ⟨grad, f(x)⟩ = ⟨grad·f'(x), x⟩, so their
#: coefficient gradient needs no recomputation of f(x).
_HOMOGENEOUS = {operators.identity, torch.relu}


def tabulated(base: Base) -> Callable[..., Tensor] | None:
    """The operator function of a base ``op(x)`` whose derivative is tabulated, else None."""
    if isinstance(base, Apply) and len(base.args) == 1 and isinstance(base.args[0], Input):
        return base.fn if base.fn in _DERIVATIVES else None
    return None


def direct(base: Base) -> Base:
    """What :class:`WeightedSum` calls for ``base``: a tabulated base's operator function
    itself (a module call per base and step costs more than the operator on a small
    layer), any other base as it is."""
    return tabulated(base) or base


def weighted_sum(x: Tensor, coefficients: Tensor, bases: Sequence[Base]) -> Tensor:
    """Σ_i coefficients[i] * bases[i](x), with plain torch ops (autograd keeps every term).

    ``coefficients`` has one leading entry per base and then broadcasts against ``x``.
    The fused :class:`WeightedSum` computes exactly the same operations in the same order,
    so both give bit-identical outputs.
    """
    out = torch.mul(bases[0](x), coefficients[0])
    for coefficient, base in zip(coefficients[1:], bases[1:]):
        out = torch.addcmul(out, base(x), coefficient)
    return out


def _inner(grad: Tensor, value: Tensor, like: Tensor) -> Tensor:
    """Σ grad·value over the dimensions a coefficient shaped ``like`` is shared across."""
    shared = [d for d, size in enumerate(like.shape) if size == 1 and value.shape[d] != 1]
    low_precision = grad.dtype in (torch.float16, torch.bfloat16)
    if not low_precision and like.numel() == 1 and grad.dim() > 0:
        return torch.dot(grad.reshape(-1), value.reshape(-1)).reshape(like.shape)
    product = grad * value
    if shared:
        acc = torch.float32 if low_precision else grad.dtype
        product = torch.sum(product, dim=shared, keepdim=True, dtype=acc)
    return product.to(like.dtype).expand(like.shape)


class WeightedSum(torch.autograd.Function):
    """``weighted_sum`` whose backward recomputes the bases from the saved input.

    ``bases`` as :func:`direct` gives them: a tabulated base is its operator function.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        coefficients: Tensor,
        bases: tuple[Base, ...],
        kernels: Kernels | None = None,
    ) -> Tensor:
        ctx.bases = bases
        ctx.kernels = kernels
        ctx.save_for_backward(x, coefficients)
        if kernels is not None and (out := kernels.forward(x, coefficients)) is not None:
            return out
        ctx.kernels = None
        out = torch.mul(bases[0](x), coefficients[0])
        for coefficient, base in zip(coefficients[1:], bases[1:]):
            out.addcmul_(base(x), coefficient)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:
        x, coefficients = ctx.saved_tensors
        need_x, need_c = ctx.needs_input_grad[:2]
        if ctx.kernels is not None and (grads := ctx.kernels.backward(x, coefficients,
                                                                      grad)) is not None:
            grad_x, grad_c = grads
            return grad_x if need_x else None, grad_c if need_c else None, None, None
        grad_x: Tensor | None = None
        grad_c: list[Tensor] = []
        for coefficient, base in zip(coefficients, ctx.bases):
            fn = base if base in _DERIVATIVES else None
            if fn in _HOMOGENEOUS:
                slope = _DERIVATIVES[fn](grad, x, x)
                value = None
                if need_c:
                    grad_c.append(_inner(slope, x, coefficient))
            else:
                if fn is not None:
                    value = base(x)
                    slope = _DERIVATIVES[fn](grad, x, value) if need_x else None
                else:
                    value, slope = _value_and_slope(base, x, grad, need_x)
                if need_c:
                    grad_c.append(_inner(grad, value, coefficient))
            if need_x and slope is not None:
                grad_x = slope * coefficient if grad_x is None else grad_x.addcmul_(
                    slope, coefficient
                )
            del value, slope
        if need_x and grad_x is None:  # only constant bases
            grad_x = torch.zeros_like(x)
        return grad_x, torch.stack(grad_c) if need_c else None, None, None


def _value_and_slope(
    base: Base, x: Tensor, grad: Tensor, need_x: bool
) -> tuple[Tensor, Tensor | None]:
    """f(x) and grad·f'(x) by autograd on a recomputation (None: f does not depend on x)."""
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(need_x)
        value = base(leaf)
    if not (need_x and value.requires_grad):
        return value.detach(), None
    (slope,) = torch.autograd.grad(value, leaf, grad)
    return value.detach(), slope


def is_fixed(bases: Iterable[nn.Module]) -> bool:
    """Whether no base has trainable parameters (the fused path's precondition)."""
    return not any(p.requires_grad for base in bases for p in base.parameters())


#: why torch.compile failed in this process (then every hull uses the eager kernel)
_COMPILE_PROBLEM: list[str] = []


class Kernels:
    """``torch.compile``d forward and backward of ``weighted_sum`` over fixed bases.

    Inductor writes C++ that does not build on every CPU (seen under
    ``ATEN_CPU_CAPABILITY=default``: ``'at::vec' has not been declared``). A call that
    fails to compile returns None and says so once per process; the caller then uses
    the eager fused kernel, which computes the same.
    """

    def __init__(self, bases: tuple[Base, ...]):
        def forward(x: Tensor, coefficients: Tensor) -> Tensor:
            return weighted_sum(x, coefficients, bases)

        def backward(x: Tensor, coefficients: Tensor, grad: Tensor) -> tuple[Tensor, Tensor]:
            _, vjp = torch.func.vjp(forward, x, coefficients)
            return vjp(grad)

        self.compiled_forward = torch.compile(forward, dynamic=True, fullgraph=True)
        self.compiled_backward = torch.compile(backward, dynamic=True, fullgraph=True)

    def forward(self, x: Tensor, coefficients: Tensor) -> Tensor | None:
        return self._call(self.compiled_forward, x, coefficients)

    def backward(self, x: Tensor, coefficients: Tensor,
                 grad: Tensor) -> tuple[Tensor, Tensor] | None:
        return self._call(self.compiled_backward, x, coefficients, grad)

    @staticmethod
    def _call(compiled: Callable[..., Any], *args: Tensor) -> Any:
        if _COMPILE_PROBLEM:
            return None
        try:
            return compiled(*args)
        except Exception as err:  # the generated code does not build here
            _COMPILE_PROBLEM.append(f"{type(err).__name__}: {str(err).strip().splitlines()[0]}")
            warnings.warn(f"acthull: kernel='compiled' cannot be compiled on this machine "
                          f"({_COMPILE_PROBLEM[0][:300]}); hulls use the eager fused kernel",
                          RuntimeWarning, stacklevel=4)
            return None


@functools.cache
def compiled_kernels(expressions: tuple[str, ...]) -> Kernels:
    """The compiled kernels of a base set, shared by every hull over the same bases."""
    from acthull.bases import compile_base

    return Kernels(tuple(compile_base(text) for text in expressions))
