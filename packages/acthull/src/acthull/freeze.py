"""Deployment: turn every learned hull into a fixed combination of plain torch ops.

A frozen hull has no parameters and no custom autograd function, so the model exports
with ``torch.export`` (and ONNX) and runs anywhere. Its outputs equal the trained hull's
to float rounding: bit for bit where the hull ran the eager kernel (both evaluate
:func:`acthull.fused.weighted_sum`'s operations in the same order), within an ulp or so
where it ran the native one (a different tanh and order of sums).
"""

from __future__ import annotations

import copy

from torch import Tensor, nn

from acthull.bases import describe
from acthull.fused import weighted_sum
from acthull.hull import Hull, coefficient_view


class FrozenHull(nn.Module):
    """g = Σ c_i f_i(x) with constant coefficients (a buffer, saved in ``state_dict``)."""

    def __init__(self, hull: Hull):
        super().__init__()
        self.kind = hull.kind
        self.bases = nn.ModuleList(freeze(base, inplace=False) for base in hull.bases)
        self.base_names = [describe(base) for base in self.bases]
        self.channels = hull.channels
        self.channel_dim = hull.channel_dim
        self.register_buffer("weights", hull.coefficients().detach().clone())

    @property
    def expression(self) -> str:
        return f"{self.kind}_n({','.join(self.base_names)})"

    def coefficients(self) -> Tensor:
        return self.weights

    def forward(self, x: Tensor) -> Tensor:
        coefficients = coefficient_view(self.weights.to(x.dtype), x.dim(), self.channel_dim)
        return weighted_sum(x, coefficients, tuple(self.bases))

    def extra_repr(self) -> str:
        return f"{self.expression} (frozen)"

    def __str__(self) -> str:
        return self.expression


def freeze(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """``model`` with every :class:`Hull` (nested ones too) replaced by a :class:`FrozenHull`.

    Returns a frozen copy unless ``inplace``; a model that is itself a hull gives a new
    :class:`FrozenHull` either way.
    """
    if isinstance(model, Hull):
        return FrozenHull(model)
    if not inplace:
        model = copy.deepcopy(model)
    for name, child in list(model.named_children()):
        if isinstance(child, Hull):
            model.add_module(name, FrozenHull(child))
        else:
            freeze(child, inplace=True)
    return model
