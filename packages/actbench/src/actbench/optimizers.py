"""Optimizers that recipes name: a plugin kind (``act_optimizers``), so a package can add
its own (Lion, Shampoo, ...) and use it with ``--set optimizer=NAME``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn


class Settings(Protocol):
    """What an optimizer reads from a recipe (:class:`actbench.Recipe` has it all)."""

    lr: float
    momentum: float
    weight_decay: float


Build = Callable[[Iterable[nn.Parameter], Settings], torch.optim.Optimizer]


@dataclass(frozen=True)
class Optimizer:
    """A registered optimizer: ``build(params, recipe)`` reads lr, momentum and weight
    decay from the recipe."""

    name: str
    description: str
    build: Build


def _adam(params: Iterable[nn.Parameter], recipe: Settings) -> torch.optim.Optimizer:
    # fused kernels: a third less time per step for the small digits models
    return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay, fused=True)


def _adamw(params: Iterable[nn.Parameter], recipe: Settings) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay,
                             fused=True)


def _rmsprop(params: Iterable[nn.Parameter], recipe: Settings) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(  # Keras defaults: rho 0.9, epsilon 1e-7
        params, lr=recipe.lr, alpha=0.9, eps=1e-7, momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
    )


def _sgd(params: Iterable[nn.Parameter], recipe: Settings) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum,
                           weight_decay=recipe.weight_decay, fused=True)


def builtin_optimizers() -> list[Optimizer]:
    return [
        Optimizer("adam", "Adam (fused)", _adam),
        Optimizer("adamw", "AdamW, decoupled weight decay (fused)", _adamw),
        Optimizer("rmsprop", "RMSprop with Keras' defaults (rho 0.9, eps 1e-7)", _rmsprop),
        Optimizer("sgd", "SGD with momentum (fused)", _sgd),
    ]
