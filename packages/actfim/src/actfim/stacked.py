"""K-FAC spectra of many networks in one pass: the same model and weights, a different
activation function in each stack of the batch.

A search computes the spectrum of one small network for hundreds of thousands of
activation functions. One at a time, each pays for its own model, hooks, passes and
decompositions; here ``K`` functions share one forward and one backward pass (their
activations an :class:`actcore.stacked.StackedActivation`), each layer's ``K`` factors
are decomposed in one batched call, and clamping, validity and features are computed for all
stacks at once, with the same rules as :func:`actfim.kfac_spectrum` (the functions of
:mod:`actfim.spectrum` and :mod:`actfim.features` that it uses). Every function gets what
it gets alone: the same factors, label draws, clamping and validity.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from actfim.eigenvalues import LayerSpectrum, Spectrum, eigvalsh_all, kronecker_logs
from actfim.features import QUANTILE_LEVELS, cdf_layout, kronecker_cdfs, kronecker_quantiles
from actfim.layers import SkippedModule
from actfim.silent import SilentLayer

#: elements of layer outputs a stacked pass may hold (with autograd's saved tensors,
#: a few times this many floats)
STACK_ELEMENTS = 1 << 24
MAX_STACK = 256


def functions_per_pass(model: nn.Module, inputs: Tensor) -> int:
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
class StackedLayer:
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

    layers: list[StackedLayer]
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
        bins = cdf_layout(self.num_weights).bins if self.layers else []
        return self._rows(sum(bins), [functools.partial(kronecker_cdfs, bins=b) for b in bins])

    def quantiles(self) -> np.ndarray:
        """The Fisher quantile functions of every stack (see
        :func:`actfim.fisher_quantiles`); NaN rows for invalid stacks."""
        return self._rows(len(self.layers) * len(QUANTILE_LEVELS),
                          [kronecker_quantiles] * len(self.layers))

    def _rows(self, width: int, per_layer: list[Callable[[Tensor, Tensor], np.ndarray]]
              ) -> np.ndarray:
        """One feature row per stack, ``per_layer[l](log_a, log_g)`` of the valid stacks'
        factors concatenated; NaN rows for the others."""
        rows = np.full((len(self.valid), width), np.nan)
        good = np.flatnonzero(self.valid)
        if len(good) and self.layers:
            rows[good] = np.concatenate(
                [features(layer.log_a[good], layer.log_g[good])
                 for features, layer in zip(per_layer, self.layers)], axis=1)
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


def stacked_eigvalsh(factors: list[Tensor], stacks: int,
                     done: Callable[[int], object] = lambda n: None
                     ) -> list[tuple[Tensor, Tensor]]:
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
    done(len(shared))
    own = [f for i, f in enumerate(factors) if i not in shared]
    each = iter(_each_eigvalsh(own, stacks, done) if own else [])
    return [shared[i] if i in shared else next(each) for i in range(len(factors))]


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


def _each_eigvalsh(factors: list[Tensor], stacks: int,
                   done: Callable[[int], object] = lambda n: None
                   ) -> list[tuple[Tensor, Tensor]]:
    finite = [torch.isfinite(f.reshape(stacks, -1)).all(1) for f in factors]
    clean = [torch.where(ok.view(-1, *[1] * (f.ndim - 1)), f, torch.zeros_like(f[:1]))
             for f, ok in zip(factors, finite)]
    pieces = max(1, min(stacks, torch.get_num_threads()))
    bounds = [(p * stacks // pieces, (p + 1) * stacks // pieces) for p in range(pieces)]
    counted = {"pieces": 0}

    def piece_done(n: int) -> None:  # a factor is done when all its pieces are
        before = counted["pieces"] // pieces
        counted["pieces"] += n
        done(counted["pieces"] // pieces - before)

    decomposed = eigvalsh_all([f[lo:hi] for f in clean for lo, hi in bounds],
                              done=piece_done, decompose=_eigvalsh_or_nan)
    values = [torch.cat(decomposed[i * pieces : (i + 1) * pieces]) for i in range(len(clean))]
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
