"""A task's Fisher inputs: the one place that samples the Fisher batch and builds the
task's model around an activation module (table builds and live searches use both)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor, nn

from actbench.hookspecs import DATASETS, MODELS
from actbench.tasks import get_task
from actcore.errors import ActError
from actcore.plugins import registry


@functools.cache
def fisher_batch(dataset: str, size: int, seed: int, root: str | None,
                 download: bool = False) -> tuple[Tensor, Tensor]:
    """``size`` training examples of ``dataset`` drawn with ``seed`` (inputs, labels);
    cached per process, as every function of a build or search uses the same batch."""
    source = registry(DATASETS).get(dataset)
    data = source.load("train", root, download, augment=False)
    if len(data) < size:
        raise ActError(f"{dataset} has {len(data)} training examples, fewer than the "
                       f"Fisher batch of {size}")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:size]
    pairs = [data[int(i)] for i in order]
    inputs = torch.stack([torch.as_tensor(x, dtype=torch.float32) for x, _ in pairs])
    return inputs, torch.as_tensor([int(y) for _, y in pairs])


def model_factory(task: str) -> Callable[[nn.Module], nn.Module]:
    """``make(activation)``: the task's model with that one activation module at every
    site (as actfim's batch spectra want it)."""
    spec = get_task(task)
    source = registry(DATASETS).get(spec.dataset)
    architecture = registry(MODELS).get(spec.model)

    def make(activation: nn.Module) -> nn.Module:
        return architecture.build(lambda: activation, source.input_shape, source.num_classes)

    return make
