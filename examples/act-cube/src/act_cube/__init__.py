"""act-cube: an example act plugin that adds the unary operator ``cube`` (x³)."""

from __future__ import annotations

import torch

from actcore import Operator, hookimpl


def cube(x: torch.Tensor) -> torch.Tensor:
    return x * x * x


@hookimpl
def act_operators() -> list[Operator]:
    return [Operator("cube", 1, cube, description="x^3")]
