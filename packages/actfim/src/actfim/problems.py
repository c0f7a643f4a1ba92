"""What makes a layer's spectrum invalid, as a record: a kind that code reads, and a
message that people read.

The kinds: ``zero`` (a factor is zero: the layer gets no gradient, or no input, which
:mod:`actfim.silent` may trace to the architecture) and ``not_finite`` (a factor, or its
log-eigenvalues, is not finite: always the function's failure).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class LayerProblem(BaseModel):
    """A layer's problem: its ``kind``, the factors that are zero (``"A"``, ``"G"``) and
    the message."""

    model_config = ConfigDict(frozen=True)

    layer: str
    kind: Literal["zero", "not_finite"]
    zero: frozenset[Literal["A", "G"]] = frozenset()
    message: str

    def __str__(self) -> str:
        return self.message


def layer_problem(name: str, bad_a: str | None, bad_g: str | None,
                  finite: bool) -> LayerProblem | None:
    """The problem of layer ``name`` from what is wrong with its factors A and G
    (``"is zero"``, ``"is not finite"`` or None, as :func:`actfim.spectrum.log_eigenvalues`
    says) and whether its log-eigenvalues are finite; None when there is none. A layer
    with any non-finite factor is ``not_finite``, whatever else is zero."""
    if bad_a or bad_g:
        bad = {factor: why for factor, why in (("A", bad_a), ("G", bad_g)) if why}
        which = " and ".join(f"{factor} ({why})" for factor, why in bad.items())
        kind = "zero" if all(why == "is zero" for why in bad.values()) else "not_finite"
        return LayerProblem(layer=name, kind=kind, message=f"layer {name!r}: factor {which}",
                            zero=frozenset(f for f, why in bad.items() if why == "is zero"))
    if not finite:  # e.g. a floor that underflowed to zero
        return LayerProblem(layer=name, kind="not_finite",
                            message=f"layer {name!r}: log-eigenvalues are not finite")
    return None
