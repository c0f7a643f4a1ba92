"""The training harness: ``train(task, activation, seed) -> Result``.

A run trains the task's model with the task's recipe, then measures loss and accuracy on
the train, validation and test splits. It is deterministic for a seed on the CPU (the
seed fixes the initial weights, the batch order and the augmentations). A run whose loss
goes non-finite, or whose activation breaks the forward pass, stops and is recorded as
failed with chance accuracy; only bad *input* (unknown task, unparsable expression,
missing data, bad override) raises :class:`actcore.ActError`. With a ``checkpoint`` path
a run saves its state after every epoch and resumes from it when restarted.
"""

from __future__ import annotations

import math
import os
import pickle
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ValidationError
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from actbench.activations import ActivationSpec, activation_factory, activation_name
from actbench.datasets import DataSource, TensorData
from actbench.hookspecs import DATASETS, MODELS
from actbench.models import Model
from actbench.recipes import Recipe
from actbench.tables import chance_accuracy
from actbench.tasks import Task, get_task
from actcore import ActError
from actcore.atomic import atomic_path
from actcore.compile import Activation
from actcore.console import Progress
from actcore.device import resolve_device
from actcore.plugins import registry
from actcore.threads import seeded, torch_threads

MAX_SEED = 2**63 - 1


class Result(BaseModel):
    """One training run."""

    task: str
    activation: str
    seed: int
    status: Literal["ok", "failed"]
    reason: str = ""
    train_accuracy: float
    val_accuracy: float
    test_accuracy: float
    train_loss: float | None
    val_loss: float | None
    test_loss: float | None
    runtime_s: float
    epochs: int
    #: the recipe it trained with (None in results files written before act recorded it)
    recipe: dict[str, Any] | None = None
    #: a learnable activation's trained parameters at each site (module name ->
    #: parameter name -> values), so learned functions can be drawn from the record
    learned: dict[str, dict[str, list[float]]] = {}


class _Failed(Exception):
    """The run cannot go on (non-finite loss, broken forward pass)."""


def batches(
    data: Dataset, batch_size: int, generator: torch.Generator | None, workers: int
) -> Iterator[tuple[Tensor, Tensor]]:
    if isinstance(data, TensorData):
        return data.batches(batch_size, generator)
    return iter(
        DataLoader(data, batch_size, shuffle=generator is not None, generator=generator,
                   num_workers=workers, persistent_workers=False)
    )  # fmt: skip


@torch.no_grad()
def evaluate_model(
    model: nn.Module, data: Dataset, batch_size: int, device: torch.device, workers: int = 0
) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of ``model`` on ``data``."""
    model.eval()
    loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    count = 0
    for x, y in batches(data, batch_size, None, workers):
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss += F.cross_entropy(logits.float(), y, reduction="sum").double()
        correct += (logits.argmax(1) == y).sum()
        count += len(y)
    return loss.item() / max(count, 1), correct.item() / max(count, 1)


def recipe_for(task: Task, overrides: dict[str, Any]) -> Recipe:
    """``task``'s recipe with ``overrides``; a bad value is an error naming the field."""
    try:
        recipe = Recipe.model_validate({**task.recipe.model_dump(), **overrides})
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()
        )
        raise ActError(f"bad training setting for task {task.name!r}: {problems}") from None
    return recipe


def _first(data: Dataset, count: int | None) -> Dataset:
    """The first ``count`` examples of ``data`` (all of them for None)."""
    if count is None or count >= len(data):
        return data
    if isinstance(data, TensorData):
        return TensorData(data.x[:count], data.y[:count], data.max_shift)
    return Subset(data, range(count))


def learned_state(model: nn.Module) -> dict[str, dict[str, list[float]]]:
    """The parameters of every activation site that learns (act's compiled expressions
    with learnable operators, such as hulls), by site."""
    return {
        name: {key: value.detach().flatten().tolist() for key, value in
               module.state_dict().items()}
        for name, module in model.named_modules()
        if isinstance(module, Activation) and any(True for _ in module.parameters())
    }  # fmt: skip


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


@dataclass(frozen=True)
class Setup:
    """What every run of one task and recipe shares: the model's architecture and the
    splits (the train split already cut to ``recipe.train_images``)."""

    task: Task
    recipe: Recipe
    source: DataSource
    architecture: Model
    splits: dict[str, Dataset]

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.splits["train"]) / self.recipe.batch_size)

    def failed(self, name: str, seed: int, reason: str, epochs: int, runtime: float) -> Result:
        """A failed run's record: chance accuracy, no losses."""
        chance = chance_accuracy(self.source.num_classes)
        return Result(
            task=self.task.name, activation=name, seed=seed, status="failed", reason=reason,
            train_accuracy=chance, val_accuracy=chance, test_accuracy=chance,
            train_loss=None, val_loss=None, test_loss=None, runtime_s=runtime, epochs=epochs,
            recipe=self.recipe.model_dump(mode="json"),
        )  # fmt: skip

    def finished(self, name: str, seed: int, metrics: dict[str, tuple[float, float]],
                 learned: dict[str, dict[str, list[float]]], runtime: float) -> Result:
        """A finished run's record from its ``(loss, accuracy)`` per split."""
        return Result(
            task=self.task.name, activation=name, seed=seed, status="ok", learned=learned,
            train_accuracy=metrics["train"][1], val_accuracy=metrics["val"][1],
            test_accuracy=metrics["test"][1], train_loss=metrics["train"][0],
            val_loss=metrics["val"][0], test_loss=metrics["test"][0], runtime_s=runtime,
            epochs=self.recipe.epochs, recipe=self.recipe.model_dump(mode="json"),
        )  # fmt: skip

    def evaluation_splits(self) -> Iterator[tuple[str, Dataset]]:
        """The splits to measure, the train images without augmentation."""
        for split, data in self.splits.items():
            if isinstance(data, TensorData):
                data = TensorData(data.x, data.y)
            yield split, data

    def optimizer_and_schedule(
        self, params: Iterable[nn.Parameter]
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
        optimizer = self.recipe.optimizer_for(params)
        steps = self.steps_per_epoch
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda t: self.recipe.lr_factor(t, steps)
        )
        return optimizer, schedule


def check_seed(seed: object) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ActError(f"seed must be an integer from 0 to 2**63 - 1 (torch's generators "
                       f"take 64 bits), got {seed!r}")


def prepare(task: str | Task, root: str | os.PathLike[str] | None, download: bool,
            overrides: dict[str, Any]) -> Setup:
    """The task, its recipe with ``overrides``, and its data; bad input raises."""
    task = get_task(task)
    recipe = recipe_for(task, overrides)
    source = registry(DATASETS).get(task.dataset)
    splits = {
        split: source.load(split, root, download, augment=recipe.augment and split == "train")
        for split in ("train", "val", "test")
    }
    splits["train"] = _first(splits["train"], recipe.train_images)  # the split is shuffled
    return Setup(task, recipe, source, registry(MODELS).get(task.model), splits)


#: errors of a run's own making (its activation), which fail the run and not the caller
RUN_ERRORS = (RuntimeError, ValueError, ArithmeticError, TypeError, IndexError)


def train(
    task: str | Task,
    activation: ActivationSpec,
    seed: int = 0,
    *,
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
    device: str | torch.device = "cpu",
    checkpoint: str | os.PathLike[str] | None = None,
    progress: bool = False,
    **overrides: Any,
) -> Result:
    """Train ``task``'s model with ``activation`` from ``seed``; never raises for a bad
    activation. ``overrides`` replace recipe fields (``epochs=5``, ``lr=1e-3``)."""
    check_seed(seed)
    return train_prepared(prepare(task, root, download, overrides), activation, seed,
                          device=resolve_device(device), checkpoint=checkpoint,
                          progress=progress)  # fmt: skip


def train_prepared(setup: Setup, activation: ActivationSpec, seed: int, *,
                   device: torch.device, checkpoint: str | os.PathLike[str] | None = None,
                   progress: bool = False) -> Result:
    """:func:`train` on a task whose data :func:`prepare` has loaded (many runs of one
    task load it once)."""
    recipe = setup.recipe
    make_activation = activation_factory(activation, normalize=recipe.normalize)
    name = activation_name(activation)
    start = time.perf_counter()

    def failed(reason: str, epochs: int) -> Result:
        return setup.failed(name, seed, reason, epochs, time.perf_counter() - start)

    # seeded keeps torch's generator to this run: a training in another thread waits its turn
    with seeded(seed, device), torch_threads(recipe.threads):
        try:
            model = setup.architecture.build(make_activation, setup.source.input_shape,
                                             setup.source.num_classes)  # fmt: skip
        except ActError:
            raise
        except Exception as err:  # a factory that cannot build is a failed activation
            return failed(f"building the model failed: {type(err).__name__}: {err}", 0)
        model.to(device)
        optimizer, schedule = setup.optimizer_and_schedule(model.parameters())
        generator = torch.Generator().manual_seed(seed)
        path = Path(checkpoint) if checkpoint is not None else None
        epoch = 0
        if path is not None and path.exists():
            epoch = resume(path, load_checkpoint(path), model, optimizer, schedule,
                           generator)["epoch"]
        bar = Progress(total=recipe.epochs, initial=epoch, unit="epoch", leave=False,
                       desc=f"{setup.task.name} {name} seed {seed}", disable=not progress,
                       delay=2)  # fmt: skip
        try:
            while epoch < recipe.epochs:
                model.train()
                total = torch.zeros((), device=device)
                for x, y in batches(setup.splits["train"], recipe.batch_size, generator,
                                    recipe.workers):  # fmt: skip
                    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                    loss = F.cross_entropy(model(x), y)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    schedule.step()
                    total += loss.detach()
                epoch += 1
                mean = total.item() / setup.steps_per_epoch
                if not math.isfinite(mean):
                    raise _Failed(f"training loss became non-finite in epoch {epoch}")
                bar.update()
                bar.set_postfix(loss=f"{mean:.4f}")
                if path is not None:
                    save_checkpoint(path, model, optimizer, schedule, generator, epoch)
            metrics = {}
            for split, data in setup.evaluation_splits():
                loss, accuracy = evaluate_model(model, data, recipe.eval_batch_size, device,
                                                recipe.workers)  # fmt: skip
                if not math.isfinite(loss):
                    raise _Failed(f"{split} loss is non-finite after training")
                metrics[split] = (loss, accuracy)
        except _Failed as err:
            return failed(str(err), epoch)
        except RUN_ERRORS as err:
            return failed(f"{type(err).__name__}: {err}", epoch)
        finally:
            bar.close()
    return setup.finished(name, seed, metrics, learned_state(model), time.perf_counter() - start)


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
           generator: torch.Generator) -> dict[str, Any]:
    """Put the run in ``state``, :func:`save_checkpoint`'s state read from ``path`` by
    :func:`load_checkpoint`; return it (``"epoch"``: the epochs already done)."""
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["rng"])
        state["epoch"] = int(state["epoch"])
        return state
    except Exception as err:
        raise ActError(f"checkpoint {path} is not a checkpoint of this run "
                       f"({type(err).__name__}: {err}); delete it to start over") from None
