"""Training recipes: optimiser, learning-rate schedule, epochs, batch size, augmentation.

Both schedules of the papers are one per-update multiplier of the base learning rate:
Keras-style time decay ``1 / (1 + lr_decay * t)`` after ``t`` updates, times step decay
``step_gamma ** (epoch // step_epochs)``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from actbench.hookspecs import OPTIMIZERS
from actbench.optimizers import builtin_optimizers
from actcore.errors import ActError
from actcore.plugins import registry


class Recipe(BaseModel):
    """How to train a model: every field can be overridden per run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    optimizer: str = Field(description="a registered optimizer (act_optimizers): adam, "
                           "rmsprop, sgd, or a plugin's")
    lr: float = Field(gt=0)
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    momentum: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    lr_decay: float = Field(0.0, ge=0, description="Keras time decay per update")
    step_epochs: int | None = Field(None, ge=1, description="step decay period (epochs)")
    step_gamma: float = Field(0.1, gt=0, le=1)
    cosine: bool = Field(False, description="cosine decay to 0 over the run (timm's default)")
    augment: bool = False
    normalize: bool = Field(
        False, description="normalise the activation: output mean 0, variance 1 under N(0,1)"
    )
    eval_batch_size: int = Field(1000, ge=1)
    workers: int = Field(0, ge=0, description="DataLoader workers for file-backed datasets")
    train_images: int | None = Field(
        None, ge=1, description="train on this many images of the train split (a fixed "
        "subset, the same for every seed); None: all"
    )
    threads: int | None = Field(
        None, ge=1, description="torch CPU threads during the run (None: leave as is)"
    )
    curves: bool = Field(
        True, description="measure validation and test after every epoch, for learning "
        "curves (off: only after the last; the training is the same either way)"
    )
    precision: Literal["float32", "bfloat16"] = Field(
        "float32", description="bfloat16: forward passes under torch.autocast, with "
        "convolutions and matrix products in bfloat16 (weights, optimiser state, activation "
        "functions and losses stay float32); faster where the CPU or GPU computes in "
        "bfloat16, and a different training from float32's"
    )

    @field_validator("optimizer")
    @classmethod
    def _registered(cls, name: str) -> str:
        """actbench's own optimizers need no plugin lookup (recipes are built while the
        plugins load); any other name must be registered by a plugin."""
        if name not in {o.name for o in builtin_optimizers()}:
            try:
                registry(OPTIMIZERS).get(name)
            except ActError as err:
                raise ValueError(str(err)) from None
        return name

    def optimizer_for(self, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        return registry(OPTIMIZERS).get(self.optimizer).build(params, self)

    def lr_factor(self, updates: int, steps_per_epoch: int) -> float:
        """The multiplier of ``lr`` after ``updates`` optimiser steps."""
        factor = 1.0 / (1.0 + self.lr_decay * updates)
        if self.step_epochs is not None:
            factor *= self.step_gamma ** ((updates // steps_per_epoch) // self.step_epochs)
        if self.cosine:
            factor *= 0.5 * (1 + math.cos(math.pi * updates / (self.epochs * steps_per_epoch)))
        return factor


#: fields that change how a run is carried out or what it records, not what it computes
EXECUTION_FIELDS = ("eval_batch_size", "workers", "threads", "curves")

# Fast CPU recipe for the digits tasks: a run takes about a second. One thread: tiny
# matrices gain nothing from more, and lose a lot when other processes share the cores.
DIGITS = Recipe(optimizer="adam", lr=3e-3, epochs=30, batch_size=64, threads=1)
# mlp3 on Fashion-MNIST at CPU scale, made for a benchmark table: a fixed fifth of the
# training images, 8 epochs of Adam at batch 128 with cosine decay to zero. In a pilot,
# ReLU's seed-to-seed std was 0.14 points (0.30 with 5 epochs at batch 64); about a
# second per training in a stack of 32.
FASHION_MLP = Recipe(optimizer="adam", lr=2e-3, epochs=8, batch_size=128, cosine=True,
                     train_images=12000, threads=1)
# The all-convolutional network on Fashion-MNIST, made for a convolutional benchmark table:
# 8,000 training images, 3 epochs of Adam 5e-3 at batch 256 with cosine decay. In pilots
# (bench/actbench_cnn_table_pilot.py, 10 seeds) ReLU's validation accuracy was 85.29% with a
# seed-to-seed std of 0.18 points, 6.3 s a training on one core; without BatchNorm the std
# was 0.4-0.8 points (packages/actbench/docs/allconv-fashion-mnist-pilots.md).
FASHION_CNN = Recipe(optimizer="adam", lr=5e-3, epochs=3, batch_size=256, cosine=True,
                     train_images=8000, threads=1, curves=False)
# Hull paper (LeNet-5, KerasNet, ResNet-56): the Keras CIFAR-10 example's recipe.
KERAS_RMSPROP = Recipe(
    optimizer="rmsprop", lr=1e-4, lr_decay=1e-6, epochs=100, batch_size=32, augment=True
)
# Hull paper (AlexNet): SGD with momentum, weight decay and step decay.
SGD_STEP = Recipe(
    optimizer="sgd", lr=1e-2, momentum=0.9, weight_decay=5e-4, step_epochs=30, epochs=90,
    batch_size=128, augment=True, workers=4,
)  # fmt: skip
# ResNet-56 on CIFAR (He et al. 2016): SGD 0.1, momentum 0.9, weight decay 1e-4, batch 128,
# lr / 10 at 32k and 48k of 64k updates; here every 80 of 160 epochs (a fixed period).
SGD_HE_CIFAR = Recipe(
    optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4, step_epochs=80, epochs=160,
    batch_size=128, augment=True,
)  # fmt: skip
# ResNet-50 on ImageNet: torchvision's reference recipe (SGD 0.1 at batch 256, momentum 0.9,
# weight decay 1e-4, lr / 10 every 30 epochs, 90 epochs).
SGD_TORCHVISION = Recipe(
    optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4, step_epochs=30, epochs=90,
    batch_size=256, augment=True, workers=4,
)  # fmt: skip
# MobileViTv2 and CoAtNet: after timm's recipes for them (AdamW, weight decay 0.05, cosine
# decay), lr 1e-3 at batch 128, without timm's warm-up, mixing and EMA.
ADAMW_COSINE = Recipe(
    optimizer="adamw", lr=1e-3, weight_decay=0.05, cosine=True, epochs=300, batch_size=128,
    augment=True, workers=4,
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

