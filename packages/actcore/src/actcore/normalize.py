"""Gaussian moments of activation functions, for normalised activations.

A normalised activation is ``(f(x) - m) / s`` with ``m = E[f(x)]`` and ``s² = Var f(x)``
under ``x ~ N(0, 1)``: its output has mean 0 and variance 1 for a standard normal input,
whatever ``f`` is, so very different functions can be compared (and trained) on an equal
footing.

The moments are integrals against the Gaussian density, computed in float64 with
composite Simpson's rule on [-16, 16] with spacing 2^-12. Every dyadic number with at
most 12 binary places (every integer and half-integer, where the kinks of relu, hard
sigmoid and friends sit) is a grid point, so the rule's error stays at the level of
float64 round-off there; past |x| = 16 the density is below 1e-56. A function whose
integrand is not finite on the grid (``exp(exp(x))``, ``reciprocal(x)``) or does not
vanish at the ends (``exp(square(x))``) has no moments to use, and a constant one
(``zero(x)``) has variance 0: both are errors.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import torch

from actcore.errors import ActError
from actcore.evaluate import evaluate
from actcore.expr import Expr, parse

LIMIT = 16.0
SPACING = 2.0 ** -12
#: An integrand f(x)²φ(x) still this large (relative) at ±16 has not decayed: the moments
#: may not exist.
TAIL = 1e-12


def gaussian_moments(expr: str | Expr) -> tuple[float, float]:
    """``(E[f(x)], E[f(x)^2])`` for ``x ~ N(0, 1)``, cached per expression."""
    return _moments(str(parse(expr)))


# (mean, std) computed elsewhere (another process, a saved file), by canonical name
_REMEMBERED: dict[str, tuple[float, float]] = {}


def remember(normalizations: Mapping[str, tuple[float, float]]) -> None:
    """Take ``(mean, std)`` pairs computed elsewhere (a search's saved moments, handed to
    its workers), so that normalising these functions needs no quadrature here."""
    _REMEMBERED.update({str(parse(name)): (float(mean), float(std))
                        for name, (mean, std) in normalizations.items()})


def normalization(expr: str | Expr) -> tuple[float, float]:
    """``(mean, std)`` of ``f(x)`` under ``x ~ N(0, 1)``; an error names a function that
    cannot be normalised."""
    text = str(parse(expr))
    if text in _REMEMBERED:
        return _REMEMBERED[text]
    mean, second = _moments(text)
    variance = second - mean * mean
    if not variance > 1e-12 * max(1.0, second):
        raise ActError(f"{text} has variance 0 under x ~ N(0, 1) (it is constant there): it "
                       "cannot be normalised")
    return mean, math.sqrt(variance)


@functools.lru_cache(maxsize=65536)
def _moments(text: str) -> tuple[float, float]:
    half = int(LIMIT / SPACING)
    x = torch.arange(-half, half + 1, dtype=torch.float64) * SPACING  # exact dyadic nodes
    with torch.no_grad():
        f = evaluate([text], x)[0]
    density = torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    weights = torch.ones_like(x)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    weights *= SPACING / 3
    first, second = f * density, f * f * density
    if not (torch.isfinite(first).all() and torch.isfinite(second).all()):
        where = x[~torch.isfinite(second)][0].item()
        raise ActError(f"{text} has no Gaussian moments: f(x)^2 is not finite in float64 at "
                       f"x = {where:g}, so it cannot be normalised")
    mean, second_moment = float((weights * first).sum()), float((weights * second).sum())
    ends = max(second[0].item(), second[-1].item())
    if ends > TAIL * max(1.0, second_moment):
        raise ActError(f"{text} has no Gaussian moments: f(x)^2 exp(-x^2/2) does not vanish "
                       f"as |x| grows (still {ends:.3g} at |x| = {LIMIT:g}), so it cannot "
                       "be normalised")
    return mean, second_moment
