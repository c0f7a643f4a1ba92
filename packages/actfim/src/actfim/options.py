"""The settings of a Fisher computation, checked once.

As curvlinops checks its options once, in the constructor of the curvature operator, and
its backends only compute, every public entry point of actfim turns its keyword settings
into one frozen :class:`FisherOptions` and hands that down: the factors, the spectra and
the silent-layer references all read the same checked record.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from actcore.errors import ActError
from actfim.labels import FisherType, Likelihood
from actfim.layers import Mode


class FisherOptions(BaseModel):
    """How to compute K-FAC factors (every field has the default act's tables use)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    #: ``"mc"`` (labels drawn from the model, ``mc_samples`` per input), ``"empirical"``
    #: (the targets) or ``"type2"`` (the exact expectation over labels; one backward pass
    #: per output)
    fisher: FisherType = FisherType.MC
    #: ``"classification"`` (softmax cross-entropy) or ``"regression"`` (Gaussian, unit
    #: variance: half squared error)
    likelihood: Likelihood = Likelihood.CLASSIFICATION
    mc_samples: int = Field(1, ge=1)
    #: precision of the factors and their decomposition
    dtype: Any = torch.float32
    #: seed of the label draws
    seed: int = 0
    #: ``"train"`` (normalisation layers use the batch's statistics, as in training and
    #: as the Act-Bench features were computed) or ``"eval"`` (running statistics, no
    #: dropout); the model is given back in the state it came in
    mode: Mode = "train"

    @field_validator("dtype")
    @classmethod
    def _float(cls, dtype: Any) -> torch.dtype:
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"must be torch.float32 or torch.float64, not {dtype}")
        return dtype

    @classmethod
    def of(cls, options: FisherOptions | None = None, **settings: Any) -> FisherOptions:
        """``options`` (default: the defaults) with ``settings`` replacing fields; a bad
        value is an :class:`ActError` naming the field and what it takes."""
        if options is not None and not settings:
            return options
        try:
            base = options.model_dump() if options is not None else {}
            return cls.model_validate({**base, **settings})
        except ValidationError as err:
            raise ActError("; ".join(_problem(e) for e in err.errors())) from None


def _problem(error: dict) -> str:
    """One field's problem, worded as a person would say it."""
    field, given = ".".join(map(str, error["loc"])), error.get("input")
    if field == "fisher":
        return f"unknown Fisher type {given!r}; use one of {[f.value for f in FisherType]}"
    if field == "likelihood":
        return f"unknown likelihood {given!r}; use one of {[k.value for k in Likelihood]}"
    if field == "mode":
        return f"mode must be 'train' or 'eval', got {given!r}"
    if field == "mc_samples":
        return f"mc_samples must be at least 1, got {given!r}"
    if field == "dtype":
        return f"dtype must be torch.float32 or torch.float64, not {given}"
    return f"{field}: {error['msg']}"
