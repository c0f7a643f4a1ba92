"""K-FAC Kronecker factors of a model, collected with module hooks.

Every ``nn.Linear``, ``nn.Conv1d`` and ``nn.Conv2d`` that the forward pass calls gets
its input second moment A accumulated by a forward hook (see :mod:`actfim.patches`),
and the gradient edge of its output recorded. One backward pass per label vector
(sampled, given, or a column of the loss Hessian's square root) then asks autograd for
the gradients at exactly those edges — no weight gradients are computed, and in-place
operations after a layer (``ReLU(inplace=True)``) cannot corrupt what is captured.

Scaling (curvlinops' KFAC "expand" convention, Grosse & Martens 2016):
``A = 1/(N·T) Σ_n Σ_t a_nt a_ntᵀ`` (averaged over samples and output locations) and
``G = 1/(N·S) Σ_s Σ_n Σ_t g_nts g_ntsᵀ`` (averaged over samples and label draws,
summed over locations), with g the gradient of the per-sample negative
log-likelihood with respect to the layer's output. A ⊗ G then approximates the
Fisher of the *average* per-sample log-likelihood.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.autograd.graph import GradientEdge, get_gradient_edge

from actcore.errors import ActError
from actfim.layers import Mode, SkippedModule, find_layers, model_mode, shape_check
from actfim.patches import ConvNd, conv_input_moment, linear_input_moment


class NonFiniteError(ArithmeticError):
    """The model's output or a factor is NaN or infinite (the function is likely bad)."""


class FisherType(enum.StrEnum):
    """Which labels the gradients are taken at."""

    MC = "mc"  # labels drawn from the model's predictive distribution
    EMPIRICAL = "empirical"  # the given targets
    TYPE2 = "type2"  # exact expectation over labels (one backward pass per output)


class Likelihood(enum.StrEnum):
    """The model's predictive distribution p(y | x)."""

    CLASSIFICATION = "classification"  # softmax over the output (cross-entropy)
    REGRESSION = "regression"  # Gaussian with unit variance (half squared error)


@dataclass
class LayerFactors:
    """The Kronecker factors of one layer, one pair per channel group.

    ``a`` has shape ``(groups, d_in (+1 for bias), same)`` and ``g`` has shape
    ``(groups, d_out/groups, same)``; the layer's Fisher block is approximated by
    the block-diagonal matrix of ``a[i] ⊗ g[i]`` (for an un-grouped layer, one block).
    """

    name: str
    kind: str
    num_weights: int
    a: Tensor
    g: Tensor


@dataclass
class _Tap:
    """What the hooks collect for one layer."""

    name: str
    module: nn.Module
    a_sum: Tensor | None = None
    a_count: int = 0
    edges: list[GradientEdge] = field(default_factory=list)
    g_sum: Tensor | None = None


def kfac_factors(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor | None = None,
    *,
    fisher: FisherType | str = FisherType.MC,
    likelihood: Likelihood | str = Likelihood.CLASSIFICATION,
    mc_samples: int = 1,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    mode: Mode = "train",
) -> tuple[list[LayerFactors], list[SkippedModule], Tensor]:
    """K-FAC factors of every supported layer that ``model(inputs)`` uses.

    Returns the factors, the skipped parameter-holding modules, and the model output.
    See :func:`actfim.kfac_spectrum` for the arguments.
    """
    if not isinstance(model, nn.Module):
        raise ActError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    fisher, likelihood = _check(fisher, likelihood, targets, inputs, mc_samples)
    layers, skipped = find_layers(model)
    if not layers:
        raise ActError("the model has no nn.Linear, nn.Conv1d or nn.Conv2d layer")
    device = _device(model, inputs)
    inputs = inputs.to(device)
    taps = {name: _Tap(name, module) for name, module in layers}
    handles = [
        module.register_forward_hook(_forward_hook(taps[name], dtype))
        for name, module in layers
    ] + [module.register_forward_pre_hook(shape_check(name)) for name, module in layers]
    frozen = [p for p in model.parameters() if not p.requires_grad]
    try:
        for p in frozen:
            p.requires_grad_(True)
        with torch.enable_grad(), model_mode(model, mode):
            output = model(inputs)
            used = [tap for tap in taps.values() if tap.edges]
            if not torch.isfinite(output).all():
                raise NonFiniteError("the model output is not finite")
            vectors = _output_gradients(output.detach(), targets, fisher, likelihood,
                                        mc_samples, seed)
            edges = [edge for tap in used for edge in tap.edges]
            for i, vector in enumerate(vectors):
                grads = torch.autograd.grad(
                    output, edges, grad_outputs=vector,
                    retain_graph=i < len(vectors) - 1, allow_unused=True,
                )
                _accumulate_g(used, grads, dtype)
    finally:
        for handle in handles:
            handle.remove()
        for p in frozen:
            p.requires_grad_(False)
    per_draw = inputs.shape[0] * (len(vectors) if fisher == FisherType.MC else 1)
    factors = []
    for tap in used:
        g = tap.g_sum / per_draw if tap.g_sum is not None else _zero_g(tap.module, dtype)
        weights = sum(p.numel() for p in tap.module.parameters(recurse=False))
        kind = type(tap.module).__name__
        factors.append(LayerFactors(tap.name, kind, weights, tap.a_sum / tap.a_count, g))
    return factors, skipped, output.detach()


def _check(fisher, likelihood, targets, inputs, mc_samples):
    try:
        fisher = FisherType(fisher)
    except ValueError:
        raise ActError(
            f"unknown Fisher type {fisher!r}; use one of {[f.value for f in FisherType]}"
        ) from None
    try:
        likelihood = Likelihood(likelihood)
    except ValueError:
        raise ActError(
            f"unknown likelihood {likelihood!r}; use one of {[k.value for k in Likelihood]}"
        ) from None
    if fisher == FisherType.EMPIRICAL and targets is None:
        raise ActError("the empirical Fisher needs targets")
    if mc_samples < 1:
        raise ActError(f"mc_samples must be at least 1, got {mc_samples}")
    if not isinstance(inputs, Tensor) or inputs.ndim < 2 or inputs.shape[0] == 0:
        raise ActError("inputs must be a non-empty tensor (N, ...) with a batch dimension "
                       "and the model's input shape")
    if not inputs.is_floating_point():
        raise ActError(f"inputs must be floating point, got {inputs.dtype}")
    if targets is not None and targets.shape[0] != inputs.shape[0]:
        raise ActError(
            f"{targets.shape[0]} targets for a batch of {inputs.shape[0]} inputs"
        )
    return fisher, likelihood


def _device(model: nn.Module, inputs: Tensor) -> torch.device:
    for p in model.parameters():
        return p.device
    return inputs.device


def _forward_hook(tap: _Tap, dtype: torch.dtype):
    def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
        x = args[0].detach().to(dtype)
        with torch.no_grad():
            if isinstance(module, nn.Linear):
                moment, count = linear_input_moment(x, module.bias is not None)
                moment = moment[None]
            else:
                moment, count = conv_input_moment(x, module)
        tap.a_sum = moment if tap.a_sum is None else tap.a_sum + moment
        tap.a_count += count
        tap.edges.append(get_gradient_edge(output))

    return hook


def _zero_g(module: nn.Module, dtype: torch.dtype) -> Tensor:
    """G of a layer that no gradient reaches."""
    groups = getattr(module, "groups", 1)
    width = module.weight.shape[0] // groups
    return module.weight.new_zeros(groups, width, width, dtype=dtype)


def _accumulate_g(taps: list[_Tap], grads: tuple[Tensor | None, ...], dtype) -> None:
    it = iter(grads)
    for tap in taps:
        for _ in tap.edges:
            grad = next(it)
            if grad is None:
                continue
            moment = _output_moment(grad.detach().to(dtype), tap.module)
            tap.g_sum = moment if tap.g_sum is None else tap.g_sum + moment


def _output_moment(grad: Tensor, module: nn.Module) -> Tensor:
    """Σ over samples and locations of g gᵀ, per channel group."""
    if isinstance(module, nn.Linear):
        g = grad.reshape(-1, grad.shape[-1])
        return (g.T @ g)[None]
    conv: ConvNd = module  # type: ignore[assignment]
    groups = conv.groups
    g = grad.transpose(0, 1).reshape(groups, grad.shape[1] // groups, -1)
    return g @ g.transpose(1, 2)


def _output_gradients(
    output: Tensor,
    targets: Tensor | None,
    fisher: FisherType,
    likelihood: Likelihood,
    mc_samples: int,
    seed: int,
) -> list[Tensor]:
    """Gradients of the per-sample negative log-likelihood w.r.t. the model output,
    one tensor per backward pass."""
    if output.ndim != 2:
        raise ActError(
            f"the model output has shape {tuple(output.shape)}; expected (batch, outputs)"
        )
    dtype = output.dtype
    output = output.to(torch.float64)
    generator = torch.Generator(device=output.device).manual_seed(seed)
    if likelihood == Likelihood.CLASSIFICATION:
        probs = torch.softmax(output, dim=1)
        if fisher == FisherType.TYPE2:
            # Columns of a square root of diag(p) − ppᵀ: √p_c (e_c − p).
            eye = torch.eye(output.shape[1], dtype=output.dtype, device=output.device)
            return [
                (probs[:, c, None].sqrt() * (eye[c] - probs)).to(dtype)
                for c in range(output.shape[1])
            ]
        if fisher == FisherType.EMPIRICAL:
            labels = [_class_labels(targets, output)]
        else:
            draws = torch.multinomial(probs, mc_samples, replacement=True,
                                      generator=generator)
            labels = list(draws.T)
        return [
            (probs - nn.functional.one_hot(y, output.shape[1])).to(dtype)
            for y in labels
        ]
    if fisher == FisherType.TYPE2:
        eye = torch.eye(output.shape[1], dtype=dtype, device=output.device)
        return [eye[c].expand(output.shape[0], -1) for c in range(output.shape[1])]
    if fisher == FisherType.EMPIRICAL:
        if targets.shape != output.shape:
            raise ActError(
                f"regression targets have shape {tuple(targets.shape)}, "
                f"the model output {tuple(output.shape)}"
            )
        return [(output - targets.to(output)).to(dtype)]
    return [
        -torch.randn(output.shape, generator=generator, dtype=output.dtype,
                     device=output.device).to(dtype)
        for _ in range(mc_samples)
    ]


def _class_labels(targets: Tensor, output: Tensor) -> Tensor:
    targets = targets.to(output.device)
    if targets.ndim != 1 or targets.is_floating_point():
        raise ActError("classification targets must be a 1-D tensor of class indices")
    if targets.min() < 0 or targets.max() >= output.shape[1]:
        raise ActError(
            f"class indices must lie in [0, {output.shape[1]}); "
            f"got {int(targets.min())}..{int(targets.max())}"
        )
    return targets
