"""actsearch's plugin kinds: surrogate regressors and search strategies.

actsearch adds these hook specifications to act's plugin manager from its plugin's
``act_addhooks``; third-party packages implement them like actsearch's own plugin does
(see ``examples/act-idw-regressor``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from actcore.hookspecs import hookspec
from actcore.plugins import Kind

REGRESSORS: Kind[Any] = Kind("regressor", "act_regressors")
STRATEGIES: Kind[Any] = Kind("strategy", "act_strategies")


@hookspec
def act_regressors() -> Iterable[Any]:
    """Return surrogate regressors that predict accuracy from embeddings."""


@hookspec
def act_strategies() -> Iterable[Any]:
    """Return search strategies that choose what to evaluate next."""
