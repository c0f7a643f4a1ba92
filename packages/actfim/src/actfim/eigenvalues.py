"""The records and arithmetic of K-FAC spectra: a layer's eigenvalues, in log space.

The eigenvalues of A ⊗ G are all products λ_i(A)·μ_j(G), so only the small factors
are decomposed (``eigvalsh``, on the factors' device) and the spectrum is the set of
pairwise sums log λ_i + log μ_j. Eigenvalues below ``ROUNDOFF·ε·λ_max`` (ε of the
factor dtype) are at the level of round-off in forming and decomposing the factor (a
PSD factor's tiny negative eigenvalues among them; measured float32 errors on All-CNN-C
reach ~17ε·λ_max): they are set to that level and counted as *clamped*. float64
factors resolve eigenvalues 10⁹ times smaller. :mod:`actfim.spectrum` computes spectra
with these.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor

from actcore.threads import torch_threads
from actfim.factors import NonFiniteError
from actfim.labels import FisherType
from actfim.layers import SkippedModule
from actfim.problems import WORDS
from actfim.silent import SilentLayer

ROUNDOFF = 32


class LayerSpectrum(BaseModel):
    """The K-FAC spectrum of one layer."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str
    kind: str  # module class, e.g. "Conv2d"
    num_weights: int  # weights and bias; equals len(log_eigenvalues)
    groups: int
    a_size: int  # rows of each group's A (input patch size, +1 for a bias)
    g_size: int  # rows of each group's G
    log_eigenvalues: Tensor  # 1-D, float64, on the CPU; all log λ(A) + log μ(G)
    clamped_a: int = 0  # eigenvalues of A raised to the round-off floor
    clamped_g: int = 0

    def summary(self) -> dict[str, float | int | str]:
        """Name, sizes and min/median/max of the log-eigenvalues."""
        values = self.log_eigenvalues
        finite = values[torch.isfinite(values)]
        stats = (
            (finite.min().item(), finite.median().item(), finite.max().item())
            if finite.numel()
            else (float("nan"),) * 3
        )
        return {
            "name": self.name,
            "kind": self.kind,
            "weights": self.num_weights,
            "eigenvalues": values.numel(),
            "min": stats[0],
            "median": stats[1],
            "max": stats[2],
            "clamped": self.clamped_a + self.clamped_g,
        }


class Spectrum(BaseModel):
    """The K-FAC Fisher spectrum of a model: one entry per layer, in call order.

    ``valid`` is False when the model output or a factor is not finite, a factor is
    zero (e.g. no gradient reaches a layer) or the computation failed; ``reason`` says
    which. Such functions are predicted to fail training.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    layers: list[LayerSpectrum]
    #: parameter-holding modules of unsupported kinds (BatchNorm, embeddings, ...):
    #: their parameters are not in the spectrum
    skipped: list[SkippedModule] = []
    #: layers no activation function reaches at initialisation: not in the spectrum
    silent: list[SilentLayer] = []
    mode: str = "train"
    valid: bool = True
    reason: str | None = None
    fisher: str = FisherType.MC.value
    seconds: float = 0.0

    @property
    def num_weights(self) -> list[int]:
        return [layer.num_weights for layer in self.layers]

    def log_eigenvalues(self) -> Tensor:
        """All layers' log-eigenvalues, concatenated."""
        return torch.cat([layer.log_eigenvalues for layer in self.layers])


def describe_failure(err: Exception) -> str:
    if isinstance(err, NonFiniteError):
        return str(err)
    return f"{type(err).__name__}: {err}"


def eigvalsh_all(factors: list[Tensor],
                  done: Callable[[int], object] = lambda n: None,
                  decompose: Callable[[Tensor], Tensor] | None = None,
                  ) -> list[Tensor | None]:
    """Eigenvalues of each (finite) factor by ``decompose`` (default
    ``torch.linalg.eigvalsh``); None for a non-finite one.

    On the CPU the decompositions run side by side, one thread each: LAPACK's
    tridiagonalisation synchronises its threads once per column, and on a busy
    machine two-thread ``eigvalsh`` was measured 15× slower than one thread.
    """
    decompose = decompose or torch.linalg.eigvalsh
    finite = [bool(torch.isfinite(f).all()) for f in factors]
    work = [i for i in range(len(factors)) if finite[i]]
    out: list[Tensor | None] = [None] * len(factors)
    done(len(factors) - len(work))
    if not work:
        return out
    if factors[work[0]].device.type != "cpu":
        for i in work:
            out[i] = _finite_or_float64(factors[i], decompose)
            done(1)
        return out
    threads = torch.get_num_threads()
    work.sort(key=lambda i: -factors[i].shape[-1])  # largest first, for balance

    def one_thread_eigvalsh(i: int) -> Tensor:
        # the thread count is per thread (OpenMP, MKL): set it where LAPACK runs, or a
        # decomposition may go multi-threaded and sum in a run-dependent order
        torch.set_num_threads(1)
        return _finite_or_float64(factors[i], decompose)

    with torch_threads(1), ThreadPoolExecutor(max_workers=threads) as pool:
        for i, values in zip(work, pool.map(one_thread_eigvalsh, work)):
            out[i] = values
            done(1)
    return out


def _finite_or_float64(factor: Tensor, decompose: Callable[[Tensor], Tensor]) -> Tensor:
    """Eigenvalues of a finite factor; LAPACK's single-precision solver was seen to return
    NaN without an error, or to fail to converge, for nearly singular float32 factors
    (All-CNN-C's layers at batch 2): those are decomposed again in float64."""
    if factor.dtype != torch.float32:
        return decompose(factor)
    try:
        values = decompose(factor)
    except torch.linalg.LinAlgError:
        values = None
    if values is None or not torch.isfinite(values).all():
        values = decompose(factor.double()).to(factor.dtype)
    return values


def log_eigenvalues(values: Tensor, finite: Tensor, factor_finite: Tensor | None = None
                    ) -> tuple[Tensor, Tensor, list[str | None]]:
    """Log-eigenvalues of stacks of symmetric PSD factors, clamped at round-off.

    ``values`` (stacks, groups, d) are the eigenvalues of each stack's factors (anything
    for a stack whose eigenvalues are not ``finite``; where the factor itself was finite,
    ``factor_finite``, LAPACK failed on it). Returns the logs, how many were raised to the
    floor per stack, and per stack what is wrong with its factor (or None: the words of
    :data:`actfim.problems.WORDS`).
    """
    top = values.amax(dim=2, keepdim=True)
    zero = (top <= 0).flatten(1).any(1) & finite
    floor = top * (ROUNDOFF * torch.finfo(values.dtype).eps)
    low = values < floor
    logs = torch.where(zero[:, None, None], torch.log(values.clamp(min=0)),
                       torch.log(torch.maximum(values, floor)))
    logs[~finite] = float("nan")
    good = finite & ~zero
    clamped = low.flatten(1).sum(1) * good
    undecomposed = (factor_finite & ~finite).tolist() if factor_finite is not None else \
        [False] * len(finite)
    bad = [None if ok else WORDS["lapack"] if lapack else WORDS["zero"] if z else
           WORDS["not_finite"]
           for ok, z, lapack in zip(good.tolist(), zero.tolist(), undecomposed)]  # fmt: skip
    return logs, clamped, bad


def kronecker_logs(log_a: Tensor, log_g: Tensor) -> Tensor:
    """All log λ_i(A) + log μ_j(G) per stack, group by group: (stacks, eigenvalues)."""
    pairs = log_a.to(torch.float64)[:, :, :, None] + log_g.to(torch.float64)[:, :, None, :]
    return pairs.flatten(1)
