"""What makes a layer's spectrum invalid, as a record: a kind that code reads, and a
message that people read.

The kinds: ``zero`` (a factor is zero: the layer gets no gradient, or no input, which
:mod:`actfim.silent` may trace to the architecture), ``not_finite`` (a factor, or its
log-eigenvalues, is not finite) and ``lapack`` (LAPACK could not decompose a finite
factor, in float32 nor in float64); the last two are always the function's failure.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

UNDECOMPOSED = "could not be decomposed by LAPACK"


class LayerProblem(BaseModel):
    """A layer's problem: its ``kind``, the factors that are zero (``"A"``, ``"G"``) and
    the message."""

    model_config = ConfigDict(frozen=True)

    layer: str
    kind: Literal["zero", "not_finite", "lapack"]
    zero: frozenset[Literal["A", "G"]] = frozenset()
    message: str

    def __str__(self) -> str:
        return self.message


#: what :func:`actfim.eigenvalues.log_eigenvalues` says of a factor, by kind; a layer with
#: several takes the first kind of this order that it has
WORDS = {"not_finite": "is not finite", "lapack": UNDECOMPOSED, "zero": "is zero"}


def layer_problem(name: str, bad_a: str | None, bad_g: str | None,
                  finite: bool) -> LayerProblem | None:
    """The problem of layer ``name`` from what is wrong with its factors A and G (one of
    :data:`WORDS`' values, or None) and whether its log-eigenvalues are finite; None when
    there is none. A layer with a factor that is not finite, or not decomposed, is never
    of kind ``zero``, whatever else is zero."""
    if bad_a or bad_g:
        bad = {factor: why for factor, why in (("A", bad_a), ("G", bad_g)) if why}
        which = " and ".join(f"{factor} ({why})" for factor, why in bad.items())
        kind = next(k for k, words in WORDS.items() if words in bad.values())
        return LayerProblem(layer=name, kind=kind, message=f"layer {name!r}: factor {which}",
                            zero=frozenset(f for f, why in bad.items() if why == "is zero"))
    if not finite:  # e.g. a floor that underflowed to zero
        return LayerProblem(layer=name, kind="not_finite",
                            message=f"layer {name!r}: log-eigenvalues are not finite")
    return None
