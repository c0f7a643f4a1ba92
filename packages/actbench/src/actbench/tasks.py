"""Tasks: a dataset, a model and a recipe under one name (``mlp-digits``)."""

from __future__ import annotations

from dataclasses import dataclass

from actbench.hookspecs import TASKS
from actbench.recipes import DIGITS, KERAS_RMSPROP, SGD_CIFAR, SGD_STEP, Recipe
from actcore.plugins import registry


@dataclass(frozen=True)
class Task:
    """Train ``model`` on ``dataset`` (registered names) with ``recipe``."""

    name: str
    dataset: str
    model: str
    recipe: Recipe
    description: str = ""


def get_task(task: str | Task) -> Task:
    """A task by name (close names suggested), or the task itself."""
    return task if isinstance(task, Task) else registry(TASKS).get(task)


def builtin_tasks() -> list[Task]:
    return [
        Task("mlp-digits", "digits", "mlp", DIGITS, "CPU scale: deep MLP on 8x8 digits"),
        Task("cnn-digits", "digits", "cnn", DIGITS, "CPU scale: small CNN on 8x8 digits"),
        Task("lenet5-fashion-mnist", "fashion-mnist", "lenet5", KERAS_RMSPROP, "hull paper"),
        Task("lenet5-cifar10", "cifar10", "lenet5", KERAS_RMSPROP, "hull paper"),
        Task("kerasnet-fashion-mnist", "fashion-mnist", "kerasnet", KERAS_RMSPROP, "hull paper"),
        Task("kerasnet-cifar10", "cifar10", "kerasnet", KERAS_RMSPROP, "hull paper"),
        Task("resnet56-cifar10", "cifar10", "resnet56", KERAS_RMSPROP, "hull paper, Act-Bench"),
        Task("allcnnc-cifar10", "cifar10", "allcnnc", SGD_CIFAR, "Act-Bench-CNN"),
        Task("alexnet-imagenet", "imagenet", "alexnet", SGD_STEP, "hull paper (ILSVRC-2012)"),
    ]
