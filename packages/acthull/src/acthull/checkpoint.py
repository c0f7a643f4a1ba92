"""The acthull checkpoint: a model's learned activation layers, readable without the model.

A checkpoint is a ``torch.save``'d dict, loadable with ``weights_only=True``::

    {"format": "acthull-checkpoint/1",
     "layers": {NAME: {"expression": str, "hull": HullSpec dict or None,
                       "channels": int or None, "state": layer state_dict}},
     "model_state": the whole model's state_dict, or None (the default)}

``expression`` rebuilds an actcore activation (``add(convex_n(identity(x),relu(x)),tanh(x))``);
``hull`` (with ``channels``) rebuilds a hull layer, per-channel ones included. Restore
learned activations into a model built the same way with :func:`load_coefficients`; the
file then holds only the activation layers (kilobytes, where a ResNet's state_dict is
tens of megabytes). ``model_state=True`` adds the whole model's state_dict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ValidationError
from torch import nn

import actcore
from actcore.atomic import atomic_path
from actcore.errors import ActError
from acthull.freeze import FrozenHull
from acthull.hull import Hull, HullSpec
from acthull.inspection import activation_layers

FORMAT = "acthull-checkpoint/1"


class LayerRecord(BaseModel):
    """How to rebuild one activation layer, and its learned state."""

    expression: str
    hull: HullSpec | None = None
    channels: int | None = None
    state: dict[str, Any]

    def build(self) -> nn.Module:
        if self.hull is not None:
            module = self.hull.build(self.channels)
        else:
            module = actcore.to_module(self.expression)
        try:
            module.load_state_dict(self.state)
        except RuntimeError as err:
            raise ActError(f"checkpoint layer {self.expression!r} does not match its state: "
                           f"{err}") from None
        return module


def _record(layer: nn.Module) -> LayerRecord:
    hull = layer if isinstance(layer, Hull) else None
    return LayerRecord(
        expression=str(layer.expression),
        hull=hull.spec if hull is not None else None,
        channels=hull.channels if hull is not None else None,
        state={key: value.detach().cpu() for key, value in layer.state_dict().items()},
    )


def save_checkpoint(path: str | Path, model: nn.Module, *, model_state: bool = False) -> Path:
    """Write ``model``'s activation layers atomically to ``path`` (with ``model_state``,
    the whole model's state_dict too)."""
    layers = activation_layers(model)
    if not layers:
        raise ActError(f"{type(model).__name__} has no hull activation to save")
    if any(isinstance(m, FrozenHull) for layer in layers.values() for m in layer.modules()):
        raise ActError("save the trained model, not a frozen one (freeze after loading)")
    payload = {
        "format": FORMAT,
        "layers": {name: _record(layer).model_dump() for name, layer in layers.items()},
        "model_state": model.state_dict() if model_state else None,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_coefficients(model: nn.Module, path: str | Path) -> list[str]:
    """Load a checkpoint's learned activation layers into ``model`` (built the same way:
    same layer names and hulls); returns the loaded layer names."""
    saved = _records(path)
    layers = activation_layers(model)
    missing = sorted(set(saved) - set(layers))
    extra = sorted(set(layers) - set(saved))
    if missing or extra:
        raise ActError(
            f"{str(path)!r} does not fit {type(model).__name__}: layers only in the file: "
            f"{missing or 'none'}; only in the model: {extra or 'none'}"
        )
    for name, record in saved.items():
        layer = layers[name]
        if str(layer.expression) != record.expression:
            raise ActError(f"layer {name!r} is {layer.expression} in the model but "
                           f"{record.expression} in {str(path)!r}")
        try:
            layer.load_state_dict(record.state)
        except RuntimeError as err:
            raise ActError(f"layer {name!r} does not match {str(path)!r}: {err}") from None
    return list(saved)


def load_layers(path: str | Path) -> dict[str, nn.Module]:
    """The activation layers of a checkpoint, rebuilt with their learned coefficients."""
    return {name: record.build() for name, record in _records(path).items()}


def _records(path: str | Path) -> dict[str, LayerRecord]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ActError(f"no checkpoint file {str(path)!r}") from None
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ActError(
            f"cannot read checkpoint {str(path)!r} (write one with "
            f"acthull.save_checkpoint(path, model)): {reason}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ActError(
            f"{str(path)!r} is not an acthull checkpoint (write one with "
            "acthull.save_checkpoint(path, model))"
        )
    try:
        return {n: LayerRecord.model_validate(r) for n, r in payload["layers"].items()}
    except (ValidationError, AttributeError, KeyError) as err:
        raise ActError(f"{str(path)!r}: malformed acthull checkpoint: {err}") from None
