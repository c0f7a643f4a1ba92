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

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.graph import GradientEdge, get_gradient_edge

from actcore.errors import ActError
from actfim.labels import FisherType, output_gradients
from actfim.layers import Mode, SkippedModule, find_layers, model_mode, shape_check
from actfim.options import FisherOptions
from actfim.patches import ConvNd, conv_input_moment, linear_input_moment


class NonFiniteError(ArithmeticError):
    """The model's output or a factor is NaN or infinite (the function is likely bad)."""


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
class StackedFactors:
    """The factors of ``stacks`` networks sharing one model's weights (see
    :func:`stacked_factors`): each layer's ``a`` and ``g`` get a leading stack dimension.
    ``failed[s]`` says why stack ``s`` has no usable factors (None when it has)."""

    layers: list[LayerFactors]
    failed: list[str | None]
    skipped: list[SkippedModule]
    output: Tensor


@dataclass
class _Tap:
    """What the hooks collect for one layer (sums with a leading stack dimension)."""

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
    options: FisherOptions | None = None,
    **settings: Any,
) -> tuple[list[LayerFactors], list[SkippedModule], Tensor]:
    """K-FAC factors of every supported layer that ``model(inputs)`` uses.

    Returns the factors, the skipped parameter-holding modules, and the model output.
    ``options`` and ``settings`` (its fields: ``fisher="type2"``) as for
    :func:`actfim.kfac_spectrum`.
    """
    stacked = stacked_factors(model, inputs, targets, stacks=1,
                              options=FisherOptions.of(options, **settings))
    if stacked.failed[0]:
        raise NonFiniteError(stacked.failed[0])
    layers = [LayerFactors(f.name, f.kind, f.num_weights, f.a[0], f.g[0])
              for f in stacked.layers]
    return layers, stacked.skipped, stacked.output


def stacked_factors(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor | None = None,
    *,
    stacks: int,
    options: FisherOptions | None = None,
    **settings: Any,
) -> StackedFactors:
    """K-FAC factors of ``stacks`` networks with ``model``'s weights, in one pass.

    The model runs once on ``stacks`` copies of ``inputs``; its activations are meant to
    treat copy ``s`` differently (an :class:`actcore.stacked.StackedActivation`), and its
    samples must not interact (no batch statistics, no dropout in the chosen mode), so
    that stack ``s`` gets exactly the factors, label draws included, that the model
    with function ``s`` alone gets from :func:`kfac_factors`. A stack whose output is not
    finite is marked failed without disturbing the others.
    """
    if not isinstance(model, nn.Module):
        raise ActError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    options = FisherOptions.of(options, **settings)
    _check(options, targets, inputs)
    fisher, likelihood, dtype, mode = (options.fisher, options.likelihood, options.dtype,
                                       options.mode)  # fmt: skip
    if stacks < 1:
        raise ActError(f"stacks must be at least 1, got {stacks}")
    if stacks > 1 and (problem := mixing_module(model, mode)):
        raise ActError(f"{problem}, so stacked functions would not be computed as "
                       "separate networks; compute them one at a time, or use mode='eval'")
    layers, skipped = find_layers(model)
    if not layers:
        raise ActError("the model has no nn.Linear, nn.Conv1d or nn.Conv2d layer")
    device = _device(model, inputs)
    batch = inputs.to(device)
    inputs = batch.repeat(stacks, *([1] * (batch.ndim - 1))) if stacks > 1 else batch
    if _channels_last_safe(model, inputs):
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    taps = {name: _Tap(name, module) for name, module in layers}
    handles = [
        module.register_forward_hook(_forward_hook(taps[name], dtype, stacks))
        for name, module in layers
    ] + [module.register_forward_pre_hook(shape_check(name)) for name, module in layers]
    frozen = [p for p in model.parameters() if not p.requires_grad]
    failed: list[str | None] = [None] * stacks
    draws = 0
    try:
        for p in frozen:
            p.requires_grad_(True)
        with torch.enable_grad(), model_mode(model, mode):
            output = model(inputs)
            used = [tap for tap in taps.values() if tap.edges]
            vectors = _stack_gradients(output.detach(), stacks, failed, targets, fisher,
                                       likelihood, options.mc_samples, options.seed)
            draws = len(vectors)
            edges = [edge for tap in used for edge in tap.edges]
            for i, vector in enumerate(vectors):
                grads = torch.autograd.grad(
                    output, edges, grad_outputs=vector,
                    retain_graph=i < len(vectors) - 1, allow_unused=True,
                )
                _accumulate_g(used, grads, dtype, stacks)
    finally:
        for handle in handles:
            handle.remove()
        for p in frozen:
            p.requires_grad_(False)
    per_draw = batch.shape[0] * (draws if fisher == FisherType.MC else 1)
    factors = []
    for tap in used:
        g = (tap.g_sum / per_draw if tap.g_sum is not None
             else _zero_g(tap.module, dtype, stacks))
        weights = sum(p.numel() for p in tap.module.parameters(recurse=False))
        kind = type(tap.module).__name__
        factors.append(LayerFactors(tap.name, kind, weights, _mean(tap.a_sum, tap.a_count), g))
    return StackedFactors(factors, failed, skipped, output.detach())


def mixing_module(model: nn.Module, mode: Mode = "train") -> str | None:
    """Why stacked functions would not be separate networks in ``model`` (batch
    statistics mix them; dropout draws other masks than a one-function pass), or None."""
    if mode != "train":
        return None
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            what = "batch statistics"
        elif isinstance(module, nn.modules.dropout._DropoutNd) and module.p > 0:
            what = "dropout"
        else:
            continue
        return f"{name or 'the model'} ({type(module).__name__}) uses {what} in train mode"
    return None


# Packages whose modules' forwards take any memory layout (no ``.view`` of a feature map).
_LAYOUT_AGNOSTIC = ("torch.", "actcore.", "acthull.", "actfim.", "actbench.", "actsearch.")


def _channels_last_safe(model: nn.Module, inputs: Tensor) -> bool:
    """Whether to run an image batch channels-last: oneDNN's CPU convolutions are ~20%
    faster so (All-CNN-C, forward and backward). Only where every module's forward is
    PyTorch's or act's own: a model's own forward may ``.view`` a feature map, which a
    channels-last tensor refuses. The factors are the same up to float rounding."""
    if inputs.ndim != 4 or inputs.device.type != "cpu":
        return False
    return all(type(m).__module__.startswith(_LAYOUT_AGNOSTIC) for m in model.modules())


def _stack_gradients(output: Tensor, stacks: int, failed: list[str | None],
                     targets, fisher, likelihood, mc_samples, seed) -> list[Tensor]:
    """The output gradients of every stack, each drawn as a lone network draws them;
    stacks with a non-finite output get zeros (and a failure reason)."""
    if output.ndim != 2 or output.shape[0] % stacks:
        raise ActError(
            f"the model output has shape {tuple(output.shape)}; expected (batch, outputs)"
        )
    blocks = output.reshape(stacks, -1, output.shape[1])
    finite = torch.isfinite(blocks.flatten(1)).all(1).tolist()
    per_stack: list[list[Tensor] | None] = []
    for s, block in enumerate(blocks):
        if not finite[s]:
            failed[s] = "the model output is not finite"
            per_stack.append(None)
        else:
            per_stack.append(output_gradients(block, targets, fisher, likelihood,
                                              mc_samples, seed))
    done = next((v for v in per_stack if v is not None), None)
    if done is None:
        return []
    zeros = [torch.zeros_like(v) for v in done]
    return [torch.cat([(v or zeros)[i] for v in per_stack]) for i in range(len(done))]


def _check(options: FisherOptions, targets: Tensor | None, inputs: Tensor) -> None:
    """What the options cannot check alone: the batch, and the targets they need."""
    if options.fisher == FisherType.EMPIRICAL and targets is None:
        raise ActError("the empirical Fisher needs targets")
    if not isinstance(inputs, Tensor) or inputs.ndim < 2 or inputs.shape[0] == 0:
        raise ActError("inputs must be a non-empty tensor (N, ...) with a batch dimension "
                       "and the model's input shape")
    if not inputs.is_floating_point():
        raise ActError(f"inputs must be floating point, got {inputs.dtype}")
    if targets is not None and targets.shape[0] != inputs.shape[0]:
        raise ActError(
            f"{targets.shape[0]} targets for a batch of {inputs.shape[0]} inputs"
        )


def _mean(total: Tensor, count: int) -> Tensor:
    """``total / count``, still a shared view where ``total`` is one (stride 0)."""
    if total.ndim and total.stride(0) == 0 and total.shape[0] > 1:
        return (total[:1] / count).expand_as(total)
    return total / count


def _device(model: nn.Module, inputs: Tensor) -> torch.device:
    for p in model.parameters():
        return p.device
    return inputs.device


def _forward_hook(tap: _Tap, dtype: torch.dtype, stacks: int):
    def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
        x = args[0].detach().to(dtype)
        with torch.no_grad():
            blocks = x.reshape(stacks, -1, *x.shape[1:])
            # a layer that sees the network's input sees the same in every stack: its A
            # is computed once and shared (a view), and decomposed once downstream
            shared = stacks > 1 and bool((blocks == blocks[:1]).all())
            each = 1 if shared else stacks
            if isinstance(module, nn.Linear):
                moment, count = linear_input_moment(blocks[0] if shared else x,
                                                    module.bias is not None, each)
                moment = moment[:, None]
            else:
                pairs = [conv_input_moment(block, module) for block in blocks[:each]]
                moment, count = torch.stack([m for m, _ in pairs]), pairs[0][1]
            if shared:
                moment = moment.expand(stacks, *moment.shape[1:])
        tap.a_sum = moment if tap.a_sum is None else tap.a_sum + moment
        tap.a_count += count
        tap.edges.append(get_gradient_edge(output))

    return hook


def _zero_g(module: nn.Module, dtype: torch.dtype, stacks: int) -> Tensor:
    """G of a layer that no gradient reaches."""
    groups = getattr(module, "groups", 1)
    width = module.weight.shape[0] // groups
    return module.weight.new_zeros(stacks, groups, width, width, dtype=dtype)


def _accumulate_g(taps: list[_Tap], grads: tuple[Tensor | None, ...], dtype,
                  stacks: int) -> None:
    it = iter(grads)
    for tap in taps:
        for _ in tap.edges:
            grad = next(it)
            if grad is None:
                continue
            moment = _output_moment(grad.detach().to(dtype), tap.module, stacks)
            tap.g_sum = moment if tap.g_sum is None else tap.g_sum + moment


def _output_moment(grad: Tensor, module: nn.Module, stacks: int) -> Tensor:
    """Σ over samples and locations of g gᵀ, per stack and channel group."""
    if isinstance(module, nn.Linear):
        g = grad.reshape(stacks, -1, grad.shape[-1])
        return (g.transpose(1, 2) @ g)[:, None]
    conv: ConvNd = module  # type: ignore[assignment]
    groups = conv.groups
    if groups == 1 and grad.ndim == 4 and grad.is_contiguous(memory_format=torch.channels_last):
        g = grad.permute(0, 2, 3, 1).reshape(stacks, -1, grad.shape[1])  # no copy
        return (g.transpose(1, 2) @ g)[:, None]
    blocks = grad.reshape(stacks, -1, *grad.shape[1:]).transpose(1, 2)
    g = blocks.reshape(stacks, groups, grad.shape[1] // groups, -1)
    return g @ g.transpose(2, 3)
