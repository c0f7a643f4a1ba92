"""Look at what a model learned: coefficients, learned functions, monotonicity, plots."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

import actcore
from actcore.errors import ActError
from acthull.freeze import FrozenHull
from acthull.hull import Hull

HULL_TYPES = (Hull, FrozenHull)


def _contains_hull(module: nn.Module) -> bool:
    return any(isinstance(m, HULL_TYPES) for m in module.modules())


def activation_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The learned activation layers of ``model`` by qualified name (``""``: the model).

    A layer is an outermost hull, or an outermost :class:`actcore.Activation` containing
    one (e.g. ``add(convex_n(identity(x),relu(x)),tanh(x))``); hulls nested inside are
    part of their layer.
    """
    layers: dict[str, nn.Module] = {}

    def visit(prefix: str, module: nn.Module) -> None:
        if isinstance(module, HULL_TYPES) or (
            isinstance(module, actcore.Activation) and _contains_hull(module)
        ):
            layers[prefix] = module
            return
        for name, child in module.named_children():
            visit(f"{prefix}.{name}" if prefix else name, child)

    visit("", model)
    return layers


def hulls(model: nn.Module) -> dict[str, Hull | FrozenHull]:
    """Every hull module of ``model``, nested hulls included, by key.

    Keys are layer names: a hull that is a whole activation layer is keyed by the layer's
    name however it was built (from a :class:`HullSpec`, or from the expression
    ``convex_n(...)``, whose compiled module holds the hull as its root); a hull nested in
    a larger expression adds its path inside the layer (``3.root.args.0``).
    """
    modules = dict(model.named_modules())
    found = {}
    for name, module in modules.items():
        if isinstance(module, HULL_TYPES):
            parent, _, attr = name.rpartition(".")
            if attr == "root" and isinstance(modules.get(parent), actcore.Activation):
                name = parent
            found[name] = module
    return found


def coefficients(model: nn.Module) -> dict[str, Tensor]:
    """Every hull's coefficients ((N,) or (N, C)), keyed as :func:`hulls`."""
    return {name: hull.coefficients().detach().cpu() for name, hull in hulls(model).items()}


def _channels(layer: nn.Module) -> tuple[int | None, int]:
    """(channels, channel_dim) of a layer: per-channel only when its outer hull is."""
    if isinstance(layer, HULL_TYPES) and layer.channels is not None:
        return layer.channels, layer.channel_dim
    return None, 1


def function_values(
    layer: nn.Module, lo: float = -5.0, hi: float = 5.0, points: int = 1001
) -> tuple[Tensor, Tensor]:
    """The learned function on a grid: ``(x, y)`` with y of shape (points,) or (points, C)."""
    if not lo < hi or points < 2:
        raise ActError(f"need lo < hi and at least 2 points, got [{lo}, {hi}] with {points}")
    reference = _reference(layer)
    device = reference.device if reference is not None else torch.device("cpu")
    grid = torch.linspace(lo, hi, points, dtype=torch.float64, device=device)
    channels, dim = _channels(layer)
    with torch.no_grad():
        if channels is None:
            return grid.cpu(), layer(grid.to(_dtype(layer))).double().cpu()
        ndim = max(dim + 1 if dim >= 0 else -dim, 2)
        axis = dim % ndim
        point_axis = 1 if axis == 0 else 0
        shape = [1] * ndim
        shape[point_axis] = points
        x = grid.reshape(shape).expand(*[
            points if k == point_axis else channels if k == axis else 1 for k in range(ndim)
        ])
        y = layer(x.to(_dtype(layer)).contiguous()).double()
        y = y.movedim((point_axis, axis), (0, 1)).reshape(points, channels)
        return grid.cpu(), y.cpu()


def _reference(layer: nn.Module) -> Tensor | None:
    """A parameter or buffer of the layer: where (device, dtype) it lives."""
    tensor = next(layer.parameters(), None)
    return tensor if tensor is not None else next(layer.buffers(), None)


def _dtype(layer: nn.Module) -> torch.dtype:
    tensor = _reference(layer)
    return tensor.dtype if tensor is not None and tensor.is_floating_point() else torch.float32


def is_monotonic(
    layer: nn.Module, lo: float = -5.0, hi: float = 5.0, points: int = 1001, tol: float = 1e-6
) -> bool:
    """Whether the learned function is monotonic on [lo, hi] (every channel, either way)."""
    _, y = function_values(layer, lo, hi, points)
    steps = torch.diff(y.reshape(points, -1), dim=0)
    scale = tol * (1.0 + y.abs().max())
    increasing = (steps >= -scale).all(dim=0)
    decreasing = (steps <= scale).all(dim=0)
    return bool((increasing | decreasing).all())


def plot_functions(
    model: nn.Module | Mapping[str, nn.Module],
    path: str | Path,
    lo: float = -5.0,
    hi: float = 5.0,
    points: int = 401,
) -> Path:
    """Plot every layer's learned function (dashed: its bases) to a PNG; returns the path.

    ``model`` is a model (its :func:`activation_layers` are plotted) or layers by name.
    """
    from acthull.plot import save_figure, subplots

    layers = dict(model) if isinstance(model, Mapping) else activation_layers(model)
    if not layers:
        raise ActError("no hull activation to plot")
    fig, axes = subplots(len(layers))
    for ax, (name, layer) in zip(axes, layers.items()):
        x, y = function_values(layer, lo, hi, points)
        for base, label in _bases(layer):
            _, yb = function_values(base, lo, hi, points)
            ax.plot(x, yb, "--", lw=0.8, alpha=0.6, label=label)
        if y.dim() == 2:
            ax.plot(x, y, color="black", lw=0.6, alpha=max(0.05, 1.0 / y.shape[1] ** 0.5))
            ax.plot(x, y.mean(dim=1), color="black", lw=2, label="learned (channel mean)")
        else:
            ax.plot(x, y, color="black", lw=2, label="learned")
        mono = "monotonic" if is_monotonic(layer, lo, hi) else "not monotonic"
        ax.set_title(f"{name or 'model'}: {getattr(layer, 'expression', '')}\n{mono}", fontsize=8)
        ax.set_xlabel("x")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return save_figure(fig, path)


def _bases(layer: nn.Module) -> list[tuple[nn.Module, str]]:
    """The bases to draw beside a layer: its own, or its root hull's (as compiled)."""
    hull = layer.root if isinstance(layer, actcore.Activation) else layer
    if isinstance(hull, HULL_TYPES):
        return list(zip(hull.bases, hull.base_names))
    return []
