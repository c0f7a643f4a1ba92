"""The gradients a K-FAC backward pass starts from: the per-sample negative
log-likelihood's gradient with respect to the model output, at sampled labels (MC
Fisher), at the given labels (empirical Fisher) or at a square root of the expected
outer product (type-2)."""

from __future__ import annotations

import enum

import torch
from torch import Tensor, nn

from actcore.errors import ActError


class FisherType(enum.StrEnum):
    """Which labels the gradients are taken at."""

    MC = "mc"  # labels drawn from the model's predictive distribution
    EMPIRICAL = "empirical"  # the given targets
    TYPE2 = "type2"  # exact expectation over labels (one backward pass per output)


class Likelihood(enum.StrEnum):
    """The model's predictive distribution p(y | x)."""

    CLASSIFICATION = "classification"  # softmax over the output (cross-entropy)
    REGRESSION = "regression"  # Gaussian with unit variance (half squared error)


def output_gradients(
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
