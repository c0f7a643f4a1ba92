"""Learnable hull activations: g(x) = Σ c_i f_i(x) with the coefficients on a hull.

The constraint holds *by construction*: the module's only parameter, ``raw``, is
unconstrained, and :meth:`Hull.coefficients` maps any value of it onto the hull. No
optimizer step, weight decay or learning rate can leave the hull.

- convex hull: ``c = softmax(raw)`` (c_i ≥ 0, Σ c_i = 1);
- affine hull: ``c = 1/N + raw - mean(raw)`` (Σ c_i = 1, any sign).

``raw = 0`` is the uniform combination 1/N in both cases, and weight decay (which pulls
``raw`` towards 0) pulls the activation towards that uniform starting point.

Granularity: one coefficient vector per layer (``channels=None``, the published
setting), or one per channel (``channels=C``) along ``channel_dim`` (1 for NCHW and
(batch, features) tensors).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar, Literal, get_args

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

import actcore
from actcore.errors import ActError
from acthull import native
from acthull.bases import compile_base, describe, expression, is_expression
from acthull.fused import (
    CompiledKernels,
    WeightedSum,
    compiled_kernels,
    direct,
    is_fixed,
    weighted_sum,
)

Kind = Literal["convex", "affine"]
Granularity = Literal["layer", "channel"]
#: How a hull's forward/backward run. ``fused`` saves only the input and recomputes the
#: bases in backward: with the native kernel (one compiled loop each way) where it applies
#: and builds, else as ``eager`` does, with torch ops; ``compiled`` uses torch.compile'd
#: loops; ``autograd`` is the plain sum (autograd keeps every base output).
Kernel = Literal["fused", "eager", "compiled", "autograd"]
KERNELS: tuple[str, ...] = get_args(Kernel)


def coefficient_view(coefficients: Tensor, ndim: int, channel_dim: int) -> Tensor:
    """Reshape (N,) or (N, C) coefficients to broadcast against an ``ndim``-d input."""
    n = coefficients.shape[0]
    if coefficients.dim() == 1:
        return coefficients.reshape(n, *([1] * ndim))
    dim = channel_dim % ndim
    shape = [1] * ndim
    shape[dim] = coefficients.shape[1]
    return coefficients.reshape(n, *shape)


class Hull(nn.Module):
    """A learnable combination of fixed base functions (see :class:`ConvexHull`)."""

    kind: ClassVar[Kind]

    def __init__(
        self,
        bases: Sequence[str | actcore.Expr | nn.Module],
        *,
        channels: int | None = None,
        channel_dim: int = 1,
        kernel: Kernel = "fused",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        if isinstance(bases, str) or len(bases) == 0:
            raise ActError(f"a {self.kind} hull needs a list of at least one base function")
        if channels is not None and (not isinstance(channels, int) or channels < 1):
            raise ActError(f"channels must be a positive integer or None, got {channels!r}")
        self.bases = nn.ModuleList(compile_base(base) for base in bases)
        self.base_names = [describe(base) for base in self.bases]
        self.channels = channels
        self.channel_dim = channel_dim
        if kernel not in KERNELS:
            raise ActError(f"kernel must be one of {', '.join(KERNELS)}; got {kernel!r}")
        if kernel == "compiled" and not all(is_expression(base) for base in self.bases):
            raise ActError("kernel='compiled' needs every base given as an actcore expression")
        self.kernel = kernel
        shape = (len(self.bases),) if channels is None else (len(self.bases), channels)
        #: Unconstrained parameters; :meth:`coefficients` maps them onto the hull.
        self.raw = nn.Parameter(torch.zeros(shape, device=device, dtype=dtype))

    @property
    def expression(self) -> str:
        """The actcore expression of this hull, e.g. ``convex_n(identity(x),relu(x))``."""
        return f"{self.kind}_n({','.join(self.base_names)})"

    @property
    def spec(self) -> HullSpec:
        return HullSpec(
            kind=self.kind,
            bases=self.base_names,
            granularity="layer" if self.channels is None else "channel",
            channel_dim=self.channel_dim,
            kernel=self.kernel,
        )

    def coefficients(self) -> Tensor:
        """The hull coefficients: shape (N,) per layer, (N, C) per channel."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        if not x.is_floating_point():
            raise ActError(f"{self.expression}: needs a floating-point input, got {x.dtype}")
        if self.channels is not None:
            self._check_channels(x)
        coefficients = coefficient_view(
            self.coefficients().to(x.dtype), x.dim(), self.channel_dim
        )
        calls = tuple(direct(base) for base in self.bases)
        if self._can_fuse(calls):
            return WeightedSum.apply(x, coefficients, calls, self._kernels(calls))
        return weighted_sum(x, coefficients, tuple(self.bases))

    def _kernels(
        self, calls: tuple[Callable[[Tensor], Tensor], ...]
    ) -> CompiledKernels | native.NativeKernels | None:
        """The loops :class:`WeightedSum` tries first (None: its eager torch ops)."""
        if self.kernel == "compiled":
            return compiled_kernels(tuple(self.base_names))
        if self.kernel == "fused" and native.covers(calls):
            return native.native_kernels(calls)
        return None

    def _can_fuse(self, calls: tuple[Callable[[Tensor], Tensor], ...]) -> bool:
        # Bases with their own parameters need autograd through them (a tabulated base,
        # called as its operator, has none); under torch.compile the compiler does its
        # own fusion and recomputation.
        return (
            self.kernel != "autograd"
            and not torch.compiler.is_compiling()
            and is_fixed(base for base, call in zip(self.bases, calls) if call is base)
        )

    def _check_channels(self, x: Tensor) -> None:
        if x.dim() == 0 or not -x.dim() <= self.channel_dim < x.dim():
            raise ActError(
                f"{self.expression}: input of shape {tuple(x.shape)} has no channel "
                f"dimension {self.channel_dim}"
            )
        if x.shape[self.channel_dim] != self.channels:
            raise ActError(
                f"{self.expression}: has {self.channels} channels but the input of shape "
                f"{tuple(x.shape)} has {x.shape[self.channel_dim]} along dimension "
                f"{self.channel_dim}"
            )

    def extra_repr(self) -> str:
        where = "per layer" if self.channels is None else (
            f"{self.channels} channels along dim {self.channel_dim}"
        )
        return f"{self.expression}, {where}"

    def __str__(self) -> str:
        return self.expression


class ConvexHull(Hull):
    """g = Σ c_i f_i with c_i ≥ 0, Σ c_i = 1: monotonic when every base is."""

    kind = "convex"

    def coefficients(self) -> Tensor:
        return torch.softmax(self.raw, dim=0)


class AffineHull(Hull):
    """g = Σ c_i f_i with Σ c_i = 1 (any sign): keeps g(0)=0, g'(0)=1 for such bases."""

    kind = "affine"

    def coefficients(self) -> Tensor:
        n = self.raw.shape[0]
        return self.raw - self.raw.mean(dim=0, keepdim=True) + 1.0 / n


HULLS: dict[str, type[Hull]] = {"convex": ConvexHull, "affine": AffineHull}


class HullSpec(BaseModel):
    """A hull activation, as configuration: build one fresh module per layer from it."""

    model_config = ConfigDict(frozen=True)

    kind: Kind = "convex"
    bases: list[str] = Field(min_length=1, description="operator names or expressions over x")
    granularity: Granularity = "layer"
    channel_dim: int = 1
    kernel: Kernel = "fused"

    @property
    def expression(self) -> str:
        """The actcore expression (per-layer form), e.g. ``affine_n(identity(x),relu(x))``."""
        return f"{self.kind}_n({','.join(expression(base) for base in self.bases)})"

    def build(self, channels: int | None = None) -> Hull:
        """A new hull with fresh (uniform) coefficients; per channel needs ``channels``."""
        if self.granularity == "channel" and channels is None:
            raise ActError("a per-channel hull needs the number of channels")
        return HULLS[self.kind](
            self.bases,
            channels=channels if self.granularity == "channel" else None,
            channel_dim=self.channel_dim,
            kernel=self.kernel,
        )
