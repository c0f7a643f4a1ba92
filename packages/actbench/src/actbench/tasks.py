"""Tasks: a dataset, a model and a recipe under one name (``mlp-digits``)."""

from __future__ import annotations

from dataclasses import dataclass

from actbench.hookspecs import TASKS
from actbench.recipes import (
    ADAMW_COSINE,
    DIGITS,
    FASHION_CNN,
    FASHION_MLP,
    KERAS_RMSPROP,
    SGD_CIFAR,
    SGD_HE_CIFAR,
    SGD_STEP,
    SGD_TORCHVISION,
    Recipe,
)
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
        Task("mlp3-fashion-mnist", "fashion-mnist", "mlp3", FASHION_MLP,
             "CPU scale, made for a benchmark table: a 3x128 MLP on 12,000 Fashion-MNIST "
             "images"),
        Task("allconv-fashion-mnist", "fashion-mnist", "allconv", FASHION_CNN,
             "CPU scale, made for a convolutional benchmark table: 4 conv + BatchNorm on "
             "8,000 Fashion-MNIST images"),
        Task("lenet5-fashion-mnist", "fashion-mnist", "lenet5", KERAS_RMSPROP, "hull paper"),
        Task("lenet5-cifar10", "cifar10", "lenet5", KERAS_RMSPROP, "hull paper"),
        Task("kerasnet-fashion-mnist", "fashion-mnist", "kerasnet", KERAS_RMSPROP, "hull paper"),
        Task("kerasnet-cifar10", "cifar10", "kerasnet", KERAS_RMSPROP, "hull paper"),
        Task("resnet56-cifar10", "cifar10", "resnet56", KERAS_RMSPROP, "hull paper, Act-Bench"),
        Task("allcnnc-cifar10", "cifar10", "allcnnc", SGD_CIFAR, "Act-Bench-CNN"),
        Task("alexnet-imagenet", "imagenet", "alexnet", SGD_STEP, "hull paper (ILSVRC-2012)"),
        Task("allcnnc-cifar100", "cifar100", "allcnnc", SGD_CIFAR,
             "AQuaSurF search: All-CNN-C on CIFAR-100"),
        Task("resnet56-cifar100", "cifar100", "resnet56", SGD_HE_CIFAR,
             "AQuaSurF search: ResNet-56 on CIFAR-100 (He et al.'s recipe)"),
        Task("mobilevitv2-imagenette", "imagenette", "mobilevitv2", ADAMW_COSINE,
             "AQuaSurF Act-Bench-ViT: MobileViTv2-0.5 on Imagenette (timm)"),
        Task("mobilevitv2-imagenet", "imagenet-224", "mobilevitv2", ADAMW_COSINE,
             "AQuaSurF search: MobileViTv2-0.5 on ImageNet (timm)"),
        Task("resnet50-imagenet", "imagenet-224", "resnet50", SGD_TORCHVISION,
             "AQuaSurF transfer: ResNet-50 on ImageNet (torchvision's recipe)"),
        Task("coatnet-imagenette", "imagenette", "coatnet", ADAMW_COSINE,
             "AQuaSurF new architecture: CoAtNet-0 on Imagenette (timm; --baselines "
             "extended)"),
    ]
