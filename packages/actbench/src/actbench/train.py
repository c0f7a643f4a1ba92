"""The training harness: ``train(task, activation, seed) -> Result``.

A run trains the task's model with the task's recipe, then measures loss and accuracy on
the train, validation and test splits. It is deterministic for a seed on the CPU (the
seed fixes the initial weights, the batch order and the augmentations). A run whose loss
goes non-finite, or whose activation breaks the forward pass, stops and is recorded as
failed with chance accuracy; only bad *input* (unknown task, unparsable expression,
missing data, bad override) raises :class:`actcore.ActError`. A run measures validation
and test after every epoch (its learning curve, :attr:`Result.history`; test figures are
for drawing, never for choosing). With a ``checkpoint`` path a run saves its state after
every epoch and resumes from it when restarted, bit for bit as if never stopped.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from actbench.activations import ActivationSpec, activation_factory, activation_name
from actbench.checkpoints import load_checkpoint, resume, save_checkpoint
from actbench.datasets import DataSource, TensorData
from actbench.hookspecs import DATASETS, MODELS
from actbench.models import Model
from actbench.recipes import Recipe
from actbench.results import Epoch, Result
from actbench.tables import chance_accuracy
from actbench.tasks import Task, get_task
from actcore import ActError, to_module
from actcore.allocator import keep_freed_memory
from actcore.compile import Activation
from actcore.console import Progress
from actcore.device import resolve_device
from actcore.machine import describe_machine
from actcore.plugins import registry
from actcore.threads import seeded, torch_threads

MAX_SEED = 2**63 - 1


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


def autocast(device: torch.device, precision: str = "float32") -> torch.autocast:
    """The precision of a recipe's forward passes (:attr:`Recipe.precision`): with
    ``bfloat16``, torch's autocast runs convolutions and matrix products in bfloat16."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16")


def layout(device: torch.device) -> torch.memory_format:
    """How a run lays out its 4-D weights, and so the feature maps computed from them:
    channels-last on a CPU, where oneDNN's convolutions and max pooling are faster in it
    (a LeNet-5 step about 1.4x here; ``bench/actbench_layout.py``). The same arithmetic,
    rounded differently (dropout on feature maps lays the same draws over them in memory
    order); dense layers, and runs on a GPU, are left as they are."""
    return torch.channels_last if device.type == "cpu" else torch.preserve_format


@torch.no_grad()
def evaluate_model(
    model: nn.Module, data: Dataset, batch_size: int, device: torch.device, workers: int = 0,
    precision: str = "float32",
) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of ``model`` on ``data``, its forward passes
    in the recipe's ``precision``."""
    model.eval()
    loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    count = 0
    for x, y in batches(data, batch_size, None, workers):
        x, y = x.to(device), y.to(device)
        with autocast(device, precision):
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


def learned_activation(result: Result, site: str) -> nn.Module:
    """The activation ``result`` trained at ``site``, rebuilt from the parameters it
    recorded (the inverse of :func:`learned_state`): to draw it or read its coefficients
    without the model."""
    if site not in result.learned:
        raise ActError(f"{result.activation} seed {result.seed} learned nothing at site "
                       f"{site!r}; its learned sites: {', '.join(result.learned) or 'none'}")
    module = to_module(result.activation)
    shapes = {key: value.shape for key, value in module.state_dict().items()}
    recorded = result.learned[site]
    if recorded.keys() != shapes.keys():
        raise ActError(f"{result.activation} seed {result.seed}: site {site!r} records "
                       f"parameters {sorted(recorded)}, the expression has {sorted(shapes)}")
    for key, values in recorded.items():
        if len(values) != shapes[key].numel():
            raise ActError(f"{result.activation} seed {result.seed}: site {site!r} records "
                           f"{len(values)} values of {key}, the expression has "
                           f"{shapes[key].numel()}")
    module.load_state_dict({key: torch.tensor(values).reshape(shapes[key])
                            for key, values in recorded.items()})
    return module


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

    def failed(self, name: str, seed: int, reason: str, epochs: int, clock: Clock,
               history: Sequence[Epoch] = ()) -> Result:
        """A failed run's record (:meth:`Result.failed`) for this task and recipe."""
        return Result.failed(self.task.name, name, seed, reason,
                             chance=chance_accuracy(self.source.num_classes), epochs=epochs,
                             runtime_s=clock.wall(), cpu_s=clock.cpu(),
                             machines=clock.machines, recipe=self.recipe.model_dump(mode="json"),
                             history=history)

    def finished(self, name: str, seed: int, metrics: dict[str, tuple[float, float]],
                 learned: dict[str, dict[str, list[float]]], clock: Clock,
                 history: Sequence[Epoch] = ()) -> Result:
        """A finished run's record from its ``(loss, accuracy)`` per split."""
        return Result(
            task=self.task.name, activation=name, seed=seed, status="ok", learned=learned,
            train_accuracy=metrics["train"][1], val_accuracy=metrics["val"][1],
            test_accuracy=metrics["test"][1], train_loss=metrics["train"][0],
            val_loss=metrics["val"][0], test_loss=metrics["test"][0], runtime_s=clock.wall(),
            cpu_s=clock.cpu(), machines=clock.machines, epochs=self.recipe.epochs,
            recipe=self.recipe.model_dump(mode="json"), history=list(history),
        )  # fmt: skip

    def epoch_record(self, epoch: int, train_loss: float,
                     measured: dict[str, tuple[float, float]]) -> Epoch:
        """The curve's point after ``epoch`` from the mean training loss and the
        ``(loss, accuracy)`` of the validation and test splits."""
        return Epoch(
            epoch=epoch, train_loss=_finite(train_loss),
            val_accuracy=measured["val"][1], val_loss=_finite(measured["val"][0]),
            test_accuracy=measured["test"][1], test_loss=_finite(measured["test"][0]),
        )  # fmt: skip

    def curve_splits(self, epoch: int) -> list[str]:
        """The splits to measure after ``epoch``: validation and test for the learning
        curve (``recipe.curves``), and after the last epoch every split."""
        if epoch == self.recipe.epochs:
            return list(self.splits)
        return ["val", "test"] if self.recipe.curves else []

    def evaluation_splits(self, names: Iterable[str] | None = None
                          ) -> Iterator[tuple[str, Dataset]]:
        """The splits ``names`` (default all) to measure, the train images without
        augmentation."""
        for split in self.splits if names is None else names:
            data = self.splits[split]
            if isinstance(data, TensorData):
                data = TensorData(data.x, data.y)
            yield split, data

    def train_epoch(self, losses: Callable[[Tensor, Tensor], Tensor],
                    optimizer: torch.optim.Optimizer,
                    schedule: torch.optim.lr_scheduler.LRScheduler,
                    generator: torch.Generator, device: torch.device) -> Tensor:
        """One epoch: every shuffled training batch through ``losses(x, y)`` (a network's
        mean loss, or a stack's, one per member), whose sum is stepped; the epoch's mean
        loss (per member). The one training loop of solo runs and stacks alike; the
        process keeps the memory its steps free, for the next ones
        (:func:`actcore.allocator.keep_freed_memory`)."""
        keep_freed_memory()
        recipe = self.recipe
        total: Tensor | None = None
        for x, y in batches(self.splits["train"], recipe.batch_size, generator,
                            recipe.workers):  # fmt: skip
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast(device, recipe.precision):  # the backward pass follows its casts
                loss = losses(x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
            optimizer.step()
            schedule.step()
            total = loss.detach() if total is None else total + loss.detach()
        return total / self.steps_per_epoch

    def optimizer_and_schedule(
        self, params: Iterable[nn.Parameter]
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
        optimizer = self.recipe.optimizer_for(params)
        steps = self.steps_per_epoch
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda t: self.recipe.lr_factor(t, steps)
        )
        return optimizer, schedule


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class Clock:
    """Wall and CPU seconds since it started, plus what a resumed run had spent before,
    and the machines that time was spent on (a run resumed elsewhere lists both)."""

    def __init__(self, device: torch.device, wall: float = 0.0, cpu: float = 0.0,
                 share: int = 1, machines: Sequence[str] = ()):
        self.start = (time.perf_counter(), time.process_time())
        self.before = (wall, cpu)
        self.share = share  # a stack's members each take an equal share
        here = describe_machine(device)
        self.machines = [*machines] if machines and machines[-1] == here else [*machines, here]

    def wall(self) -> float:
        return (self.before[0] + time.perf_counter() - self.start[0]) / self.share

    def cpu(self) -> float:
        return (self.before[1] + time.process_time() - self.start[1]) / self.share

    def spent(self) -> dict[str, Any]:
        """The totals, for a checkpoint (undivided)."""
        return {"wall_s": self.wall() * self.share, "cpu_s": self.cpu() * self.share,
                "machines": self.machines}

    @classmethod
    def resumed(cls, state: dict[str, Any], device: torch.device, share: int = 1) -> Clock:
        """Going on from a checkpoint's state, as :func:`resume` checked it."""
        return cls(device, state["wall_s"], state["cpu_s"], share, state["machines"])


def warm_up(model: nn.Module, input_shape: tuple[int, ...], device: torch.device,
            precision: str = "float32") -> None:
    """One forward pass of ``model`` on a zero image, in eval mode and without gradients,
    which touches no weight, statistic or random state: kernels that build on first use
    (acthull's native hull kernel, for the dtype of the run's ``precision``) build here,
    before a run's clock starts."""
    was_training = model.training
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), \
            torch.no_grad():
        model.eval()
        try:
            with autocast(device, precision):
                model(torch.zeros(1, *input_shape, device=device))
        finally:
            model.train(was_training)


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
    """Train ``task``'s model with ``activation`` from ``seed``. An activation that fails
    in training (raises, or sends the loss non-finite) gives a failed :class:`Result`, not
    an exception; one that is not an activation (a name that does not parse) is an error.
    ``overrides`` replace recipe fields (``epochs=5``, ``lr=1e-3``)."""
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
    clock = Clock(device)
    history: list[Epoch] = []

    def failed(reason: str, epochs: int) -> Result:
        return setup.failed(name, seed, reason, epochs, clock, history)

    # seeded keeps torch's generator to this run: a training in another thread waits its turn
    with seeded(seed, device), torch_threads(recipe.threads):
        try:
            model = setup.architecture.build(make_activation, setup.source.input_shape,
                                             setup.source.num_classes)  # fmt: skip
        except ActError:
            raise
        except Exception as err:  # a factory that cannot build is a failed activation
            return failed(f"building the model failed: {type(err).__name__}: {err}", 0)
        model.to(device, memory_format=layout(device))
        try:
            warm_up(model, setup.source.input_shape, device, recipe.precision)
        except RUN_ERRORS as err:
            return failed(f"{type(err).__name__}: {err}", 0)
        clock = Clock(device)  # the run's time: not building, nor compiling kernels
        optimizer, schedule = setup.optimizer_and_schedule(model.parameters())
        generator = torch.Generator().manual_seed(seed)
        path = Path(checkpoint) if checkpoint is not None else None
        epoch = 0
        if path is not None and path.exists():
            state = resume(path, load_checkpoint(path), model, optimizer, schedule, generator,
                           recipe.epochs)  # fmt: skip
            epoch, history, clock = state["epoch"], state["history"], Clock.resumed(state, device)
        bar = Progress(total=recipe.epochs, initial=epoch, unit="epoch", leave=False,
                       desc=f"{setup.task.name} {name} seed {seed}", disable=not progress,
                       delay=2)  # fmt: skip

        def measure(splits: Iterable[str] | None = None) -> dict[str, tuple[float, float]]:
            return {split: evaluate_model(model, data, recipe.eval_batch_size, device,
                                          recipe.workers, recipe.precision)
                    for split, data in setup.evaluation_splits(splits)}  # fmt: skip

        try:
            metrics: dict[str, tuple[float, float]] = {}
            while epoch < recipe.epochs:
                model.train()
                mean = setup.train_epoch(lambda x, y: F.cross_entropy(model(x), y),
                                         optimizer, schedule, generator, device).item()
                epoch += 1
                if not math.isfinite(mean):
                    raise _Failed(f"training loss became non-finite in epoch {epoch}")
                metrics = measure(setup.curve_splits(epoch))
                if recipe.curves:
                    history.append(setup.epoch_record(epoch, mean, metrics))
                bar.update()
                bar.set_postfix(loss=f"{mean:.4f}")
                if path is not None:
                    save_checkpoint(path, model, optimizer, schedule, generator, epoch,
                                    history=[h.model_dump() for h in history],
                                    **clock.spent())  # fmt: skip
            if len(metrics) < len(setup.splits):  # resumed after the last epoch
                metrics = measure()
            for split, (loss, _) in metrics.items():
                if not math.isfinite(loss):
                    raise _Failed(f"{split} loss is non-finite after training")
        except _Failed as err:
            return failed(str(err), epoch)
        except RUN_ERRORS as err:
            return failed(f"{type(err).__name__}: {err}", epoch)
        finally:
            bar.close()
    return setup.finished(name, seed, metrics, learned_state(model), clock, history)
