"""Record every hull's coefficients during training, save them, and plot the trajectories.

Attach a :class:`CoefficientRecorder` to the optimizer (it records after every ``every``
steps) or call :meth:`CoefficientRecorder.record` yourself. Saving is atomic and a
recorder built with ``resume=PATH`` continues a saved history, so an interrupted run
loses nothing it had saved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ValidationError
from torch import nn
from torch.utils.hooks import RemovableHandle

from actcore.atomic import write_atomic
from actcore.errors import ActError
from acthull.inspection import hulls


class LayerTrajectory(BaseModel):
    """One hull's coefficients over training: ``values[t]`` is (N,) or (N, C) at ``steps[t]``."""

    bases: list[str]
    steps: list[int] = []
    values: list[list[Any]] = []


class Trajectories(BaseModel):
    """Coefficient trajectories of every hull of a model, by qualified module name."""

    format: str = "acthull-trajectories/1"
    layers: dict[str, LayerTrajectory] = {}

    def save(self, path: str | Path) -> Path:
        """Write JSON atomically (temporary file + rename)."""
        return write_atomic(path, self.model_dump_json())

    @classmethod
    def load(cls, path: str | Path) -> Trajectories:
        try:
            return cls.model_validate(json.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise ActError(f"no trajectory file {str(path)!r}") from None
        except (ValidationError, json.JSONDecodeError) as err:
            raise ActError(f"{str(path)!r} is not an acthull trajectory file: {err}") from None

    def plot(self, path: str | Path) -> Path:
        """One panel per hull, one line per base (per channel: mean and min–max band)."""
        from acthull.plot import save_figure, subplots

        if not self.layers:
            raise ActError("no trajectories to plot")
        fig, axes = subplots(len(self.layers))
        for ax, (name, layer) in zip(axes, self.layers.items()):
            values = torch.tensor(layer.values, dtype=torch.float64)  # (T, N) or (T, N, C)
            for i, base in enumerate(layer.bases):
                if values.dim() == 3:
                    line = ax.plot(layer.steps, values[:, i].mean(-1), label=base)[0]
                    ax.fill_between(
                        layer.steps, values[:, i].amin(-1), values[:, i].amax(-1),
                        color=line.get_color(), alpha=0.2,
                    )
                else:
                    ax.plot(layer.steps, values[:, i], label=base)
            ax.set_title(name, fontsize=9)
            ax.set_xlabel("step")
            ax.set_ylabel("coefficient")
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
        return save_figure(fig, path)


class CoefficientRecorder:
    """Collects :class:`Trajectories` of every hull in ``model`` (nested hulls included)."""

    def __init__(self, model: nn.Module, every: int = 1, resume: str | Path | None = None):
        if every < 1:
            raise ActError(f"every must be a positive number of steps, got {every}")
        self.hulls = hulls(model)
        if not self.hulls:
            raise ActError(f"{type(model).__name__} has no hull activation to record")
        self.every = every
        self.trajectories = Trajectories(layers={
            name: LayerTrajectory(bases=list(hull.base_names))
            for name, hull in self.hulls.items()
        })
        self.step = 0
        if resume is not None and Path(resume).exists():
            self._resume(Trajectories.load(resume))

    def _resume(self, saved: Trajectories) -> None:
        if saved.layers.keys() != self.trajectories.layers.keys():
            raise ActError("the saved trajectories are of a model with other hull layers")
        self.trajectories = saved
        self.step = max((max(t.steps, default=0) for t in saved.layers.values()), default=0)

    def record(self, step: int | None = None) -> None:
        """Append every hull's current coefficients (at ``step``, default: steps counted)."""
        step = self.step if step is None else step
        with torch.no_grad():
            for name, hull in self.hulls.items():
                layer = self.trajectories.layers[name]
                layer.steps.append(step)
                layer.values.append(hull.coefficients().detach().double().cpu().tolist())

    def attach(self, optimizer: torch.optim.Optimizer) -> RemovableHandle:
        """Record after every ``every``-th ``optimizer.step()`` (the start is recorded now)."""
        if self.step == 0:
            self.record(0)

        def after_step(*_: Any) -> None:
            self.step += 1
            if self.step % self.every == 0:
                self.record(self.step)

        return optimizer.register_step_post_hook(after_step)

    def save(self, path: str | Path) -> Path:
        return self.trajectories.save(path)

    def plot(self, path: str | Path) -> Path:
        return self.trajectories.plot(path)
