"""K-FAC Fisher spectra: the eigenvalues of every layer's A ⊗ G, in log space, for one
activation function or many at once.

One orchestration serves both: :func:`stacked_spectra` computes the spectra of ``K``
networks that share a model and its weights in one pass (their activations an
:class:`actcore.stacked.StackedActivation`), and :func:`kfac_spectrum` is that with one
network. The settings are checked once (:class:`actfim.options.FisherOptions`); then the
factors are collected (:mod:`actfim.factors`), decomposed (:mod:`actfim.stacked`) and put
in log space (:mod:`actfim.eigenvalues`). A factor that is zero or not finite makes a
function's spectrum invalid, as does an output that is not finite; except that a layer
whose factor is zero whatever the activation function (the architecture silences it at
initialisation: :mod:`actfim.silent`) is left out and named instead.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor, nn

from actcore.console import Progress
from actcore.errors import ActError
from actfim.eigenvalues import (
    ROUNDOFF,
    LayerSpectrum,
    Spectrum,
    describe_failure,
    kronecker_logs,
    log_eigenvalues,
)
from actfim.factors import stacked_factors
from actfim.options import FisherOptions
from actfim.problems import LayerProblem, layer_problem
from actfim.silent import Silence, leave_out, silent_layers
from actfim.stacked import StackedLayer, StackedSpectra, stacked_eigvalsh

__all__ = ["ROUNDOFF", "LayerSpectrum", "Spectrum", "kfac_spectrum", "kronecker_logs",
           "log_eigenvalues", "stacked_spectra"]  # fmt: skip


def kfac_spectrum(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor | None = None,
    options: FisherOptions | None = None,
    *,
    progress: bool = False,
    **settings: Any,
) -> Spectrum:
    """The K-FAC Fisher spectrum of ``model`` on a batch, one entry per layer:
    :func:`stacked_spectra` with one network.

    ``model``
        any module; its ``nn.Linear``/``nn.Conv1d``/``nn.Conv2d`` layers are found by
        hooks (other parameter-holding modules are listed as skipped). All work happens
        on the model's device.
    ``inputs``
        a batch ``(N, ...)``.
    ``targets``
        class indices ``(N,)`` (classification) or ``(N, D)`` (regression); needed only
        for ``fisher="empirical"``.
    ``options``
        the Fisher settings (:class:`actfim.FisherOptions`: Fisher type, likelihood,
        label draws, precision, seed, train or eval mode).
    ``progress``
        show a progress bar (the factors' pass, then the decompositions).
    ``settings``
        fields of the options given by name (``fisher="type2"``, ``mode="eval"``,
        ``dtype=torch.float64``), over ``options``.

    Bad arguments raise :class:`actcore.ActError`; a non-finite or failed computation
    returns a spectrum with ``valid=False`` and the reason.
    """
    return stacked_spectra(model, inputs, targets, options, stacks=1, progress=progress,
                           **settings).spectrum(0)


def stacked_spectra(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor | None = None,
    options: FisherOptions | None = None,
    *,
    stacks: int,
    progress: bool = False,
    **settings: Any,
) -> StackedSpectra:
    """The spectra of ``stacks`` networks that share ``model`` (see
    :func:`actfim.factors.stacked_factors`); other arguments as for :func:`kfac_spectrum`.

    A failed stack is invalid with the reason; bad arguments raise.
    """
    options = FisherOptions.of(options, **settings)
    start = time.perf_counter()

    def seconds() -> float:
        return (time.perf_counter() - start) / stacks

    with Progress(desc="K-FAC factors (forward, backward)", unit="factor", leave=False,
                  disable=not progress) as bar:  # fmt: skip
        try:
            stacked = stacked_factors(model, inputs, targets, stacks=stacks, options=options)
        except ActError:
            raise
        except Exception as err:  # a bad activation function fails; a bad call raises
            return StackedSpectra([], [False] * stacks, [describe_failure(err)] * stacks,
                                  [True] * stacks, [], [], options.fisher.value, options.mode,
                                  seconds())  # fmt: skip
        bar.set_description("eigenvalues of the factors")
        bar.reset(total=2 * len(stacked.layers))
        values = stacked_eigvalsh([m for layer in stacked.layers for m in (layer.a, layer.g)],
                                  stacks, done=bar.update)  # fmt: skip
    reasons = list(stacked.failed)
    layers, problems = [], [{} for _ in range(stacks)]
    for i, layer in enumerate(stacked.layers):
        (eig_a, ok_a), (eig_g, ok_g) = values[2 * i], values[2 * i + 1]
        log_a, clamped_a, bad_a = log_eigenvalues(eig_a, ok_a, _finite(layer.a, stacks))
        log_g, clamped_g, bad_g = log_eigenvalues(eig_g, ok_g, _finite(layer.g, stacks))
        # a sum of two finite logs is finite: the pairs need not be formed to check
        finite = (torch.isfinite(log_a).flatten(1).all(1)
                  & torch.isfinite(log_g).flatten(1).all(1)).tolist()
        for s in range(stacks):
            problems[s][layer.name] = layer_problem(layer.name, bad_a[s], bad_g[s], finite[s])
        layers.append(StackedLayer(layer.name, layer.kind, layer.num_weights,
                                   layer.a.shape[1], layer.a.shape[2], layer.g.shape[2],
                                   log_a.cpu(), log_g.cpu(), clamped_a.cpu(),
                                   clamped_g.cpu()))  # fmt: skip
    # a stack that failed as a whole has no layer problems to weigh
    live = [problems[s] for s in range(stacks) if reasons[s] is None]
    silence = silent_layers(live, model, inputs, targets, options)
    layers, silent = leave_out(layers, silence.zero)
    for s in range(stacks):
        if reasons[s] is None:
            reasons[s] = reasons_of(problems[s], silence)
    return StackedSpectra(layers, [r is None for r in reasons], reasons,
                          [f is not None for f in stacked.failed], stacked.skipped, silent,
                          options.fisher.value, options.mode, seconds())  # fmt: skip


def _finite(factor: Tensor, stacks: int) -> Tensor:
    """Per stack, whether its factor is finite (a shared factor, stride 0, checked once)."""
    if stacks > 1 and factor.stride(0) == 0:
        return torch.isfinite(factor[0]).all().expand(stacks).cpu()
    return torch.isfinite(factor.reshape(stacks, -1)).all(1).cpu()


def reasons_of(problems: dict[str, LayerProblem | None], silence: Silence) -> str | None:
    """Why a function's spectrum is invalid (None: it is valid): its layers' problems but
    those of the silent layers, and why none could be called silent where that is the
    question."""
    found = [str(p) for name, p in problems.items() if p and name not in silence.zero]
    if silence.note and any(p and p.kind == "zero" for p in problems.values()):
        found.append(silence.note)
    return "; ".join(found) or None
