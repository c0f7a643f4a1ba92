"""Training recipes: optimiser, learning-rate schedule, epochs, batch size, augmentation.

Both schedules of the papers are one per-update multiplier of the base learning rate:
Keras-style time decay ``1 / (1 + lr_decay * t)`` after ``t`` updates, times step decay
``step_gamma ** (epoch // step_epochs)``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from actcore.errors import ActError


class Recipe(BaseModel):
    """How to train a model: every field can be overridden per run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    optimizer: Literal["adam", "rmsprop", "sgd"]
    lr: float = Field(gt=0)
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    momentum: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    lr_decay: float = Field(0.0, ge=0, description="Keras time decay per update")
    step_epochs: int | None = Field(None, ge=1, description="step decay period (epochs)")
    step_gamma: float = Field(0.1, gt=0, le=1)
    augment: bool = False
    normalize: bool = Field(
        False, description="normalise the activation: output mean 0, variance 1 under N(0,1)"
    )
    eval_batch_size: int = Field(1000, ge=1)
    workers: int = Field(0, ge=0, description="DataLoader workers for file-backed datasets")
    threads: int | None = Field(
        None, ge=1, description="torch CPU threads during the run (None: leave as is)"
    )

    def optimizer_for(self, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        # fused kernels: a third less time per step for the small digits models
        if self.optimizer == "adam":
            return torch.optim.Adam(
                params, lr=self.lr, weight_decay=self.weight_decay, fused=True
            )
        if self.optimizer == "rmsprop":  # Keras defaults: rho 0.9, epsilon 1e-7
            return torch.optim.RMSprop(
                params, lr=self.lr, alpha=0.9, eps=1e-7,
                momentum=self.momentum, weight_decay=self.weight_decay,
            )  # fmt: skip
        return torch.optim.SGD(
            params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
            fused=True,
        )

    def lr_factor(self, updates: int, steps_per_epoch: int) -> float:
        """The multiplier of ``lr`` after ``updates`` optimiser steps."""
        factor = 1.0 / (1.0 + self.lr_decay * updates)
        if self.step_epochs is not None:
            factor *= self.step_gamma ** ((updates // steps_per_epoch) // self.step_epochs)
        return factor


# Fast CPU recipe for the digits tasks: a run takes about a second. One thread: tiny
# matrices gain nothing from more, and lose a lot when other processes share the cores.
DIGITS = Recipe(optimizer="adam", lr=3e-3, epochs=30, batch_size=64, threads=1)
# Hull paper (LeNet-5, KerasNet, ResNet-56): the Keras CIFAR-10 example's recipe.
KERAS_RMSPROP = Recipe(
    optimizer="rmsprop", lr=1e-4, lr_decay=1e-6, epochs=100, batch_size=32, augment=True
)
# Hull paper (AlexNet): SGD with momentum, weight decay and step decay.
SGD_STEP = Recipe(
    optimizer="sgd", lr=1e-2, momentum=0.9, weight_decay=5e-4, step_epochs=30, epochs=90,
    batch_size=128, augment=True, workers=4,
)  # fmt: skip
# All-CNN-C on CIFAR-10 (Act-Bench-CNN): SGD with momentum and step decay.
SGD_CIFAR = Recipe(
    optimizer="sgd", lr=1e-2, momentum=0.9, weight_decay=5e-4, step_epochs=40, epochs=100,
    batch_size=128, augment=True,
)  # fmt: skip


def parse_overrides(
    items: Iterable[str], epochs: int | None = None, normalize: bool = False
) -> dict[str, Any]:
    """Recipe overrides from ``FIELD=VALUE`` strings (values read as JSON when they are),
    ``--epochs`` and ``--normalize``."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ActError(f"--set expects FIELD=VALUE, got {item!r}")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    if epochs is not None:
        overrides["epochs"] = epochs
    if normalize:
        overrides["normalize"] = True
    return overrides

