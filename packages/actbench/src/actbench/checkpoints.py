"""Runs that survive a stop: a run's state after each epoch, written atomically, read back
as tensors and plain values only, and resumed bit for bit; each checkpoint's file name
names the training it belongs to."""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from actbench.recipes import EXECUTION_FIELDS, Recipe
from actbench.results import Epoch
from actcore import ActError
from actcore.atomic import atomic_path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A training checkpoint, read as tensors and plain values only (``weights_only``): a
    file from elsewhere that carries pickled objects, which could run code, is refused."""
    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError as err:
        refused = re.search(r"GLOBAL ([\w.]+)", str(err))
        if refused:
            raise ActError(f"checkpoint {path} carries a pickled object ({refused[1]}), "
                           "which act never saves and does not load") from None
        raise ActError(f"checkpoint {path} is not a checkpoint of this run (it cannot be "
                       "read as one); delete it to start over") from None
    except Exception as err:
        raise ActError(f"checkpoint {path} is not a checkpoint of this run "
                       f"({type(err).__name__}: {err}); delete it to start over") from None


#: recipe fields added after checkpoints were first named (every run before had their
#: default): a name holds one only where it differs, so older checkpoints keep their names
NAMED_SINCE = ("precision",)


def checkpoint_name(task: str, recipe: Recipe, names: Sequence[str], seed: int) -> str:
    """The file name of the checkpoint of ``names`` (one run, or a stack) trained on
    ``task`` from ``seed``. It names everything the training depends on but its length, so
    another recipe never resumes it and a longer run of the same recipe does."""
    fields = recipe.model_dump(mode="json", exclude={"epochs", *EXECUTION_FIELDS})
    for field in NAMED_SINCE:
        if fields[field] == Recipe.model_fields[field].default:
            del fields[field]
    key = json.dumps([task, seed, list(names), fields], sort_keys=True)
    return f"seed{seed}-{hashlib.sha256(key.encode()).hexdigest()[:20]}.pt"


def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    schedule: torch.optim.lr_scheduler.LRScheduler,
                    generator: torch.Generator, epoch: int, **extra: Any) -> None:
    """The run's state after ``epoch`` epochs (and ``extra`` plain values), written
    atomically."""
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "schedule": schedule.state_dict(), "generator": generator.get_state(),
             "rng": torch.get_rng_state(), "epoch": epoch, **extra}  # fmt: skip
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def resume(path: Path, state: dict[str, Any], model: nn.Module,
           optimizer: torch.optim.Optimizer, schedule: torch.optim.lr_scheduler.LRScheduler,
           generator: torch.Generator, epochs: int) -> dict[str, Any]:
    """Put the run in ``state``, :func:`save_checkpoint`'s state read from ``path`` by
    :func:`load_checkpoint`; return it (``"epoch"``: the epochs already done,
    ``"history"``: the learning curve so far). A run of ``epochs`` epochs cannot resume
    from a checkpoint made after more."""
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        _lay_out_like_parameters(optimizer)
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["rng"])
        state["epoch"] = int(state["epoch"])
        state["history"] = _histories(state.get("history", []))
        state["wall_s"], state["cpu_s"] = (float(state.get(k, 0.0)) for k in ("wall_s", "cpu_s"))
        state["machines"] = _machines(state.get("machines", []))
    except Exception as err:
        raise ActError(f"checkpoint {path} is not a checkpoint of this run "
                       f"({type(err).__name__}: {err}); delete it to start over") from None
    if state["epoch"] > epochs:
        raise ActError(f"checkpoint {path} was saved after epoch {state['epoch']}, past the "
                       f"{epochs} epochs asked for; delete it to start over")
    return state


def _lay_out_like_parameters(optimizer: torch.optim.Optimizer) -> None:
    """Give each optimiser state tensor its parameter's memory layout. A checkpoint keeps
    the layout it was saved in (contiguous from an act before channels-last, or from a GPU
    run), and torch's fused optimisers (act's Adam, AdamW and SGD) read a parameter and
    its state as flat arrays: in another layout they pair the wrong numbers, silently."""
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if (torch.is_tensor(value) and value.shape == param.shape
                    and value.stride() != param.stride()):
                state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def _machines(saved: object) -> list[str]:
    """The machines a checkpointed run has used (none in checkpoints written before act
    recorded them)."""
    if not isinstance(saved, list) or not all(isinstance(m, str) for m in saved):
        raise TypeError(f"machines must be a list of names, got {saved!r}")
    return saved


def _histories(saved: list) -> list:
    """A checkpoint's learning curve: one list of :class:`Epoch` (a run's) or one per
    stack member."""
    if saved and isinstance(saved[0], list):
        return [[Epoch.model_validate(h) for h in member] for member in saved]
    return [Epoch.model_validate(h) for h in saved]
