"""The layers K-FAC covers in a model, the ones it skips, and running the model in an
explicit train or eval mode that leaves it as it was."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
from pydantic import BaseModel
from torch import nn
from torch.nn.parameter import is_lazy

from actcore.errors import ActError

SUPPORTED = (nn.Linear, nn.Conv1d, nn.Conv2d)
Mode = Literal["train", "eval"]


class SkippedModule(BaseModel):
    """A module holding parameters of a kind K-FAC does not cover (BatchNorm, LayerNorm,
    embeddings...): its parameters are not in the spectrum."""

    name: str
    kind: str
    parameters: int

    def __str__(self) -> str:
        return f"{self.name} ({self.kind}, {self.parameters:,} parameters)"


def find_layers(model: nn.Module) -> tuple[list[tuple[str, nn.Module]], list[SkippedModule]]:
    """Supported layers, and the other modules that hold parameters."""
    layers, skipped = [], []
    for name, module in model.named_modules():
        if isinstance(module, SUPPORTED):
            layers.append((name or type(module).__name__, module))
            continue
        own = sum(0 if is_lazy(p) else p.numel() for p in module.parameters(recurse=False))
        if own:
            skipped.append(SkippedModule(name=name or type(module).__name__,
                                         kind=type(module).__name__, parameters=own))
    return layers, skipped


@contextmanager
def model_mode(model: nn.Module, mode: Mode) -> Iterator[None]:
    """Run ``model`` in ``mode`` and give it back exactly as it was: every module's
    training flag and every buffer (BatchNorm's running statistics and batch counter,
    which a train-mode forward pass updates)."""
    flags = {module: module.training for module in model.modules()}
    buffers = {name: buffer.detach().clone() for name, buffer in model.named_buffers()
               if not is_lazy(buffer)}
    model.train(mode == "train")
    try:
        yield
    finally:
        for module, flag in flags.items():
            module.training = flag
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                if name in buffers and buffer.shape == buffers[name].shape:
                    buffer.copy_(buffers[name])


def shape_check(name: str):
    """A pre-hook that turns a wrongly shaped batch into an ActError naming the layer
    (a shape the user gave, not a failure of the activation function)."""

    def check(module: nn.Module, args: tuple) -> None:
        x = args[0]
        if isinstance(module, nn.Linear):
            expected, got, what = module.in_features, x.shape[-1], "input features"
        else:  # Conv1d/Conv2d: (N, C, *spatial)
            spatial = len(module.kernel_size)
            if x.ndim != spatial + 2:
                raise ActError(f"layer {name!r} ({type(module).__name__}) needs "
                               f"{spatial + 2}-D input, got shape {tuple(x.shape)}")
            expected, got, what = module.in_channels, x.shape[1], "input channels"
        if got != expected:
            raise ActError(f"layer {name!r} ({type(module).__name__}) expects {expected} "
                           f"{what}, got {got}: do the inputs have the model's shape?")

    return check
