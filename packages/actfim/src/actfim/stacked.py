"""K-FAC spectra of many networks in one pass: the same model and weights, a different
activation function in each stack of the batch.

A search computes the spectrum of one small network for hundreds of thousands of
activation functions. One at a time, each pays for its own model, hooks, passes and
decompositions; here ``K`` functions share one forward and one backward pass (their
activations an :class:`actcore.stacked.StackedActivation`), each layer's ``K`` factors
are decomposed in one batched call, and clamping, validity and CDFs are computed for all
stacks at once, with the same rules as :func:`actfim.kfac_spectrum` (the functions of
:mod:`actfim.spectrum` and :mod:`actfim.features` that it uses). Every function gets what
it gets alone: the same factors, label draws, clamping and validity.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from actcore.errors import ActError
from actfim.factors import FisherType, Likelihood, stacked_factors
from actfim.features import cdf_layout, kronecker_cdfs
from actfim.layers import Mode, SkippedModule
from actfim.problems import layer_problem
from actfim.silent import SilentLayer, leave_out, silent_layers
from actfim.spectrum import (
    LayerSpectrum,
    Spectrum,
    describe_failure,
    eigvalsh_all,
    kronecker_logs,
    log_eigenvalues,
)
from actfim.spectrum import reasons as layer_reasons

#: elements of layer outputs a stacked pass may hold (with autograd's saved tensors,
#: a few times this many floats)
STACK_ELEMENTS = 1 << 24
MAX_STACK = 256


def stack_size(model: nn.Module, inputs: Tensor) -> int:
    """How many functions to stack for ``model`` on this batch: as many as keep the
    layer outputs of one pass below :data:`STACK_ELEMENTS` (at most :data:`MAX_STACK`)."""
    sizes: list[int] = []
    hooks = [m.register_forward_hook(lambda m, a, out: sizes.append(out.numel()))
             for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(inputs[:1])
    finally:
        for hook in hooks:
            hook.remove()
    per_function = max(1, sum(sizes) * inputs.shape[0])
    return max(1, min(MAX_STACK, STACK_ELEMENTS // per_function))


@dataclass
class _Layer:
    name: str
    kind: str
    num_weights: int
    groups: int
    a_size: int
    g_size: int
    log_a: Tensor  # (stacks, groups, a_size), CPU: each stack's log λ(A)
    log_g: Tensor  # (stacks, groups, g_size), CPU: log μ(G)
    clamped_a: Tensor  # (stacks,)
    clamped_g: Tensor


@dataclass
class StackedSpectra:
    """The spectra of ``stacks`` networks: per stack, valid or the reason it is not."""

    layers: list[_Layer]
    valid: list[bool]
    reasons: list[str | None]
    failed: list[bool]  # no spectrum at all (the pass failed or the output is not finite)
    skipped: list[SkippedModule]
    silent: list[SilentLayer]  # left out: no activation function reaches them
    fisher: str
    mode: str
    seconds: float  # per stack

    @property
    def num_weights(self) -> list[int]:
        return [layer.num_weights for layer in self.layers]

    def clamped(self, s: int) -> int:
        return sum(int(layer.clamped_a[s] + layer.clamped_g[s]) for layer in self.layers)

    def cdfs(self) -> np.ndarray:
        """The Fisher CDF of every stack (see :func:`actfim.fisher_cdf`); NaN rows for
        invalid stacks."""
        layout = cdf_layout(self.num_weights) if self.layers else None
        rows = np.full((len(self.valid), layout.length if layout else 0), np.nan)
        good = np.flatnonzero(self.valid)
        if len(good) and layout is not None:
            rows[good] = np.concatenate(
                [kronecker_cdfs(layer.log_a[good], layer.log_g[good], bins)
                 for layer, bins in zip(self.layers, layout.bins)], axis=1)
        return rows

    def spectrum(self, s: int) -> Spectrum:
        """Stack ``s`` as the :class:`Spectrum` that :func:`actfim.kfac_spectrum` gives."""
        common = dict(skipped=self.skipped, silent=self.silent, fisher=self.fisher,
                      mode=self.mode,
                      seconds=self.seconds, valid=self.valid[s], reason=self.reasons[s])
        if self.failed[s]:
            return Spectrum(layers=[], **common)
        layers = [
            LayerSpectrum(name=la.name, kind=la.kind, num_weights=la.num_weights,
                          groups=la.groups, a_size=la.a_size, g_size=la.g_size,
                          log_eigenvalues=kronecker_logs(la.log_a[s : s + 1],
                                                         la.log_g[s : s + 1])[0],
                          clamped_a=int(la.clamped_a[s]), clamped_g=int(la.clamped_g[s]))
            for la in self.layers
        ]
        return Spectrum(layers=layers, **common)


def stacked_spectra(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor | None = None,
    *,
    stacks: int,
    fisher: FisherType | str = FisherType.MC,
    likelihood: Likelihood | str = Likelihood.CLASSIFICATION,
    mc_samples: int = 1,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    mode: Mode = "train",
) -> StackedSpectra:
    """The spectra of ``stacks`` networks that share ``model`` (see
    :func:`actfim.factors.stacked_factors`); arguments as for :func:`actfim.kfac_spectrum`.

    A failed stack is invalid with the reason; bad arguments raise.
    """
    start = time.perf_counter()
    fisher_name = FisherType(fisher).value if fisher in set(FisherType) else str(fisher)
    try:
        stacked = stacked_factors(model, inputs, targets, stacks=stacks, fisher=fisher,
                                  likelihood=likelihood, mc_samples=mc_samples,
                                  dtype=dtype, seed=seed, mode=mode)
    except ActError:
        raise
    except Exception as err:
        return StackedSpectra([], [False] * stacks, [describe_failure(err)] * stacks,
                              [True] * stacks, [], [],
                              fisher_name, mode, (time.perf_counter() - start) / stacks)
    reasons = list(stacked.failed)
    values = _stacked_eigvalsh([m for layer in stacked.layers for m in (layer.a, layer.g)],
                               stacks)
    layers, problems = [], [{} for _ in range(stacks)]
    for i, layer in enumerate(stacked.layers):
        (eig_a, ok_a), (eig_g, ok_g) = values[2 * i], values[2 * i + 1]
        log_a, clamped_a, bad_a = log_eigenvalues(eig_a, ok_a)
        log_g, clamped_g, bad_g = log_eigenvalues(eig_g, ok_g)
        # a sum of two finite logs is finite: the pairs need not be formed to check
        finite = (torch.isfinite(log_a).flatten(1).all(1)
                  & torch.isfinite(log_g).flatten(1).all(1)).tolist()
        for s in range(stacks):
            problems[s][layer.name] = layer_problem(layer.name, bad_a[s], bad_g[s], finite[s])
        layers.append(_Layer(layer.name, layer.kind, layer.num_weights, layer.a.shape[1],
                             layer.a.shape[2], layer.g.shape[2], log_a.cpu(), log_g.cpu(),
                             clamped_a.cpu(), clamped_g.cpu()))
    # a stack that failed as a whole has no layer problems to weigh
    live = [problems[s] for s in range(stacks) if reasons[s] is None]
    silence = silent_layers(live, model, inputs, targets, fisher=fisher,
                            likelihood=likelihood, mc_samples=mc_samples, dtype=dtype,
                            seed=seed, mode=mode)  # fmt: skip
    layers, silent = leave_out(layers, silence.zero)
    for s in range(stacks):
        if reasons[s] is None:
            reasons[s] = layer_reasons(problems[s], silence)
    return StackedSpectra(layers, [r is None for r in reasons], reasons,
                          [f is not None for f in stacked.failed], stacked.skipped, silent,
                          fisher_name, mode, (time.perf_counter() - start) / stacks)


def _stacked_eigvalsh(factors: list[Tensor], stacks: int) -> list[tuple[Tensor, Tensor]]:
    """Per factor: the eigenvalues of every stack and which stacks were finite.

    A factor shared by every stack (a view of one, as the input layer's A is) is
    decomposed once, and once per process while the same factor comes back (the same
    images every batch of functions). Non-finite stacks are decomposed as zeros; the
    stacks are split into one piece per thread so every core works on a layer. A stack
    that LAPACK cannot decompose (it fails to converge on some degenerate factors) counts
    as not finite.
    """
    shared = {i: _shared_eigvalsh(f[0], stacks) for i, f in enumerate(factors)
              if stacks > 1 and f.stride(0) == 0}  # fmt: skip
    own = [f for i, f in enumerate(factors) if i not in shared]
    done = iter(_each_eigvalsh(own, stacks) if own else [])
    return [shared[i] if i in shared else next(done) for i in range(len(factors))]


#: the last shared factor decomposed, with its eigenvalues and whether they are finite
_SHARED: list[tuple[Tensor, tuple[Tensor, Tensor]]] = []


def _shared_eigvalsh(factor: Tensor, stacks: int) -> tuple[Tensor, Tensor]:
    cached = next((v for f, v in _SHARED if f.shape == factor.shape and f.dtype == factor.dtype
                   and f.device == factor.device and torch.equal(f, factor)), None)  # fmt: skip
    if cached is None:
        cached = _each_eigvalsh([factor[None]], 1)[0]
        _SHARED[:] = [(factor.clone(), cached)]
    values, ok = cached
    return values.expand(stacks, *values.shape[1:]), ok.expand(stacks)


def _each_eigvalsh(factors: list[Tensor], stacks: int) -> list[tuple[Tensor, Tensor]]:
    finite = [torch.isfinite(f.reshape(stacks, -1)).all(1) for f in factors]
    clean = [torch.where(ok.view(-1, *[1] * (f.ndim - 1)), f, torch.zeros_like(f[:1]))
             for f, ok in zip(factors, finite)]
    pieces = max(1, min(stacks, torch.get_num_threads()))
    bounds = [(p * stacks // pieces, (p + 1) * stacks // pieces) for p in range(pieces)]
    done = eigvalsh_all([f[lo:hi] for f in clean for lo, hi in bounds],
                        decompose=_eigvalsh_or_nan)
    values = [torch.cat(done[i * pieces : (i + 1) * pieces]) for i in range(len(clean))]
    return [(v, ok & torch.isfinite(v.flatten(1)).all(1)) for v, ok in zip(values, finite)]


def _eigvalsh_or_nan(stacked: Tensor) -> Tensor:
    """Batched eigenvalues; a stack LAPACK fails on gets NaN (the others are kept)."""
    try:
        return torch.linalg.eigvalsh(stacked)
    except Exception:
        rows = []
        for factor in stacked:
            try:
                rows.append(torch.linalg.eigvalsh(factor))
            except Exception:
                rows.append(factor.new_full(factor.shape[:-1], float("nan")))
        return torch.stack(rows)
