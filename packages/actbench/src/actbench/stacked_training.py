"""``train_many(task, activations, seed)``: many activation functions trained in one pass.

The runs of one task and seed share everything but the activation: the initial weights
(each member is built from the seed, as its solo run is), the batches and augmentations
(drawn once from the seed's generator) and the dropout masks (drawn once from torch's
generator, in the solo run's order). :class:`actbench.stacking.StackedModel` runs them as
one network, so each member's parameters follow its solo run's to rounding.

Stacking pays where the layers are matrix products too small to fill the machine (MLPs on
a CPU, any small network on a GPU); grouped convolutions on a CPU are slower than one
network at a time, so there the automatic stack size is 1 and the runs are solo
:func:`actbench.train` calls. A member whose loss goes non-finite fails at the epoch, and
with the reason, its solo run would; a stack that raises (an activation that breaks the
forward pass) is redone one run at a time.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from actbench.activations import ActivationSpec, activation_factory, activation_name
from actbench.checkpoints import checkpoint_name, load_checkpoint, resume, save_checkpoint
from actbench.hookspecs import DATASETS, MODELS
from actbench.results import Epoch, Result
from actbench.stacking import StackedModel, Unstackable, keep_in_optimizer
from actbench.tasks import Task, get_task
from actbench.train import (
    RUN_ERRORS,
    Clock,
    Setup,
    autocast,
    batches,
    check_seed,
    learned_state,
    prepare,
    train_prepared,
    warm_up,
)
from actcore import ActError
from actcore.console import Progress, log
from actcore.device import parse_device, resolve_device
from actcore.plugins import registry
from actcore.threads import seeded, torch_threads

#: members per stack where stacking pays (measured: bench/actbench_stacked_training.py)
STACK_CPU_DENSE = 32
STACK_CUDA = 32


def auto_stack(model: nn.Module, device: torch.device) -> int:
    """The stack size that pays for ``model`` on ``device``: on a CPU, stacks of dense
    networks only (grouped convolutions there are slower than one network at a time)."""
    if device.type == "cuda":
        return STACK_CUDA
    if any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules()):
        return 1
    return STACK_CPU_DENSE


def members_per_stack(task: str | Task, device: str | torch.device | None = "cpu",
                      stack: int | None = None) -> int:
    """``stack``, checked, or where it is None the size that pays for ``task``'s model on
    ``device`` (:func:`auto_stack`; a CPU's for None, a device left to Dask workers),
    logged. The device is only named here, not used: it need not be this machine's."""
    if stack is not None:
        if stack < 1:
            raise ActError(f"stack must be 1 or more, got {stack}")
        return stack
    task, device = get_task(task), parse_device(device or "cpu")
    source = registry(DATASETS).get(task.dataset)
    with torch.random.fork_rng(devices=[]):  # building draws; the caller's state stays
        probe = registry(MODELS).get(task.model).build("identity", source.input_shape,
                                                       source.num_classes)  # fmt: skip
    size = auto_stack(probe, device)
    log.info("%s on %s: %s", task.name, device.type,
             f"stacks of {size}" if size > 1 else "one at a time (stacking does not pay)")
    return size


def train_many(
    task: str | Task,
    activations: Sequence[ActivationSpec],
    seed: int = 0,
    *,
    stack: int | None = None,
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
    device: str | torch.device = "cpu",
    checkpoint: str | os.PathLike[str] | None = None,
    progress: bool = False,
    **overrides: Any,
) -> list[Result]:
    """The :class:`Result` that :func:`actbench.train` gives for each activation, in order,
    trained ``stack`` at a time (None: :func:`auto_stack`; 1: one at a time). With a
    ``checkpoint`` folder, each run or stack saves its state there after every epoch
    (:func:`actbench.checkpoints.checkpoint_name`) and resumes from it; the caller removes a
    checkpoint once its results are safe."""
    check_seed(seed)
    device = resolve_device(device)
    stack = members_per_stack(task, device, stack)
    setup = prepare(task, root, download, overrides)  # the data, loaded once for all runs
    factories = [activation_factory(a, normalize=setup.recipe.normalize) for a in activations]
    names = [activation_name(a) for a in activations]

    def saved(chunk: Sequence[int]) -> Path | None:
        if checkpoint is None:
            return None
        names_ = [names[i] for i in chunk]
        return Path(checkpoint) / checkpoint_name(setup.task.name, setup.recipe, names_, seed)

    def alone(i: int) -> Result:
        return train_prepared(setup, activations[i], seed, device=device,
                              checkpoint=saved([i]), progress=progress)  # fmt: skip

    results: dict[int, Result] = {}
    chunks = [range(first, min(first + stack, len(names)))
              for first in range(0, len(names), stack)]  # fmt: skip
    while chunks:
        chunk = chunks.pop(0)
        if len(chunk) == 1:
            results[chunk[0]] = alone(chunk[0])
            continue
        path = saved(chunk)
        run = _Stack(setup, [names[i] for i in chunk], [factories[i] for i in chunk], seed,
                     device, path, progress)  # fmt: skip
        try:
            done = run.results()
        except torch.OutOfMemoryError:  # halve the stack, rather than go one at a time
            half = len(chunk) // 2
            log.info("%s: a stack of %d ran out of memory; stacks of %d and %d instead",
                     setup.task.name, len(chunk), half, len(chunk) - half)
            if path is not None:
                path.unlink(missing_ok=True)
            chunks[:0] = [chunk[:half], chunk[half:]]
            continue
        results.update((i, done.get(j) or alone(i)) for j, i in enumerate(chunk))
        if run.broke is not None:
            _report_broken_pass(setup.task.name, run.broke,
                                [results[i] for j, i in enumerate(chunk) if j not in done])
    return [results[i] for i in range(len(names))]


def _report_broken_pass(task: str, error: str, alone: list[Result]) -> None:
    """Say that a stacked pass failed. If one of the members trained alone fails too, it
    is the likely cause (an activation's own failure); if all of them train, no activation
    is to blame: a fault in stacking itself, which costs time, not correctness."""
    if any(r.status == "failed" for r in alone):
        log.info("%s: a stacked pass failed (%s); its members were trained one at a time",
                 task, error)
    else:
        log.warning("%s: a stacked pass failed (%s), yet each of its %d members trains "
                    "alone: a fault in act's stacking, not in an activation. The results "
                    "are the solo runs' (right, only slower); please report it",
                    task, error, len(alone))


def build_with_sites(setup: Setup, factory: Callable[[], nn.Module],
                     seed: int) -> tuple[nn.Module, list[str]]:
    """The task's model built from ``seed`` (as its solo run builds it) with ``factory``'s
    activations, and the names of its activation sites."""
    made: list[nn.Module] = []

    def recording() -> nn.Module:
        made.append(factory())
        return made[-1]

    torch.manual_seed(seed)
    model = setup.architecture.build(recording, setup.source.input_shape,
                                     setup.source.num_classes)  # fmt: skip
    ids = {id(m) for m in made}
    return model, [name for name, m in model.named_modules() if id(m) in ids]


class _Stack:
    """One stack's training; :meth:`results` gives each member's result, leaving out the
    members that must be trained alone."""

    def __init__(self, setup: Setup, names: list[str], factories: list, seed: int,
                 device: torch.device, checkpoint: Path | None, progress: bool):
        self.setup, self.names, self.factories, self.seed = setup, names, factories, seed
        self.device, self.checkpoint, self.progress = device, checkpoint, progress
        self.done: dict[int, Result] = {}
        self.clock = Clock(device, share=len(names))
        self.history: list[list[Epoch]] = [[] for _ in names]
        #: why a stacked pass failed, if one did (its members are then trained alone)
        self.broke: str | None = None

    def results(self) -> dict[int, Result]:
        recipe = self.setup.recipe
        with seeded(self.seed, self.device), torch_threads(recipe.threads):
            members, sites, state = self._build()
            if len(members) < 2:
                return self.done  # nothing to stack: the caller trains what is left alone
            try:
                model = StackedModel(list(members.values()), sites).to(self.device)
            except Unstackable as err:
                log.info("%s: trained one at a time: %s", self.setup.task.name, err)
                return self.done
            torch.set_rng_state(state)
            try:
                warm_up(model, self.setup.source.input_shape, self.device,
                        self.setup.recipe.precision)
                # the clock starts here: not building, nor compiling
                self.clock = Clock(self.device, share=len(self.names))
                index, measured = self._train(model, list(members))
                if index:
                    self._measure(model, index, measured)
            except torch.OutOfMemoryError:
                raise  # the caller halves the stack
            except RUN_ERRORS as err:  # one member broke the pass: the rest go alone
                self.broke = f"{type(err).__name__}: {err}"
                return {k: r for k, r in self.done.items() if r.status == "failed"}
        return self.done

    def _fail(self, k: int, reason: str, epochs: int) -> None:
        self.done[k] = self.setup.failed(self.names[k], self.seed, reason, epochs,
                                         self.clock, self.history[k])  # fmt: skip

    def _build(self) -> tuple[dict[int, nn.Module], list[str], Tensor]:
        """Each member's model, built from the seed as its solo run builds it; the
        activation sites' names; torch's generator state after building. A member whose
        building draws differently from the first, or whose activations draw random
        numbers in training (their draws would shift the dropout masks of the members
        after it), is left to train alone."""
        members: dict[int, nn.Module] = {}
        sites: list[str] = []
        state = None
        for k, factory in enumerate(self.factories):
            try:
                model, built_sites = build_with_sites(self.setup, factory, self.seed)
            except ActError:
                raise
            except Exception as err:
                self._fail(k, f"building the model failed: {type(err).__name__}: {err}", 0)
                continue
            after = torch.get_rng_state()
            if state is None:
                state, sites = after, built_sites
            elif not torch.equal(after, state):
                continue
            members[k] = model.to(self.device)
        if members:
            shape = self.setup.source.input_shape
            reference, _ = build_with_sites(self.setup, nn.Identity, self.seed)
            draws = _draws(reference.to(self.device), shape, self.device)
            for k in list(members):
                if not torch.equal(_draws(members[k], shape, self.device), draws):
                    log.info("%s: %s draws random numbers in training (or breaks the "
                             "forward pass); trained alone", self.setup.task.name,
                             self.names[k])  # fmt: skip
                    del members[k]
        return members, sites, state

    def _train(self, model: StackedModel, index: list[int]
               ) -> tuple[list[int], dict[int, dict[str, tuple[float, float]]]]:
        """Train the stack whose positions hold members ``index``; a member that fails
        leaves the stack. The members still in it, by position, and what the last epoch
        measured of them (every split after the last epoch, as a solo run)."""
        setup, recipe = self.setup, self.setup.recipe
        optimizer, schedule = setup.optimizer_and_schedule(model.parameters())
        generator = torch.Generator().manual_seed(self.seed)
        epoch, failures, measured = 0, {}, {}
        if self.checkpoint is not None and self.checkpoint.exists():
            saved = load_checkpoint(self.checkpoint)
            if saved.get("functions") != self.names:
                raise ActError(f"checkpoint {self.checkpoint} is of a stack of other functions "
                               f"({saved.get('functions')}); delete it to start over")
            failures = saved.get("failed", {})
            index = self._drop(model, optimizer, index, [k for k in index if k in failures])
            saved = resume(self.checkpoint, saved, model, optimizer, schedule, generator,
                           recipe.epochs)  # fmt: skip
            epoch, self.clock = saved["epoch"], Clock.resumed(saved, self.device, len(self.names))
            self.history = saved["history"] or self.history
            for k, (reason, when) in failures.items():
                self._fail(k, reason, when)
        bar = Progress(total=recipe.epochs, initial=epoch, unit="epoch", leave=False, delay=2,
                       desc=f"{setup.task.name} {len(index)} functions seed {self.seed}",
                       disable=not self.progress)  # fmt: skip
        model.train()  # once: a stack's thousands of activation modules are slow to walk
        try:
            while epoch < recipe.epochs and index:
                means = setup.train_epoch(lambda x, y: _member_losses(model(x), y), optimizer,
                                          schedule, generator, self.device).cpu()
                epoch += 1
                losses = dict(zip(index, means.tolist(), strict=True))
                diverged = [k for k, mean in losses.items() if not math.isfinite(mean)]
                for k in diverged:
                    failures[k] = (f"training loss became non-finite in epoch {epoch}", epoch)
                    self._fail(k, *failures[k])
                index = self._drop(model, optimizer, index, diverged)
                splits = setup.curve_splits(epoch)
                measured = self._evaluate(model, index, splits) if splits and index else {}
                if recipe.curves and index:
                    for k, metrics in measured.items():
                        self.history[k].append(setup.epoch_record(epoch, losses[k], metrics))
                model.train()  # measuring put it in eval mode
                bar.update()
                if self.checkpoint is not None:
                    save_checkpoint(self.checkpoint, model, optimizer, schedule, generator,
                                    epoch, failed=failures, functions=self.names,
                                    history=[[h.model_dump() for h in member]
                                             for member in self.history],
                                    **self.clock.spent())  # fmt: skip
        finally:
            bar.close()
        return index, measured

    @staticmethod
    def _drop(model: StackedModel, optimizer: torch.optim.Optimizer, index: list[int],
              gone: list[int]) -> list[int]:
        """Take the members ``gone`` out of the stack; the members left."""
        if not gone:
            return index
        kept = [j for j, k in enumerate(index) if k not in gone]
        keep_in_optimizer(optimizer, model.keep(kept), kept, len(index))
        return [index[j] for j in kept]

    def _evaluate(self, model: StackedModel, index: list[int], splits: list[str] | None = None
                  ) -> dict[int, dict[str, tuple[float, float]]]:
        """Loss and accuracy per split (default all) for each member still running."""
        recipe = self.setup.recipe
        metrics: dict[int, dict[str, tuple[float, float]]] = {k: {} for k in index}
        for split, data in self.setup.evaluation_splits(splits):
            for j, measured in enumerate(evaluate_stack(model, data, recipe.eval_batch_size,
                                                        self.device, recipe.workers,
                                                        recipe.precision)):
                metrics[index[j]][split] = measured
        return metrics

    def _measure(self, model: StackedModel, index: list[int],
                 measured: dict[int, dict[str, tuple[float, float]]]) -> None:
        """Each member still running's record from its loss and accuracy per split, as the
        last epoch ``measured`` them (measured now when resumed after the last epoch)."""
        recipe = self.setup.recipe
        if not measured:  # resumed after the last epoch: nothing measured in this process
            measured = self._evaluate(model, index)
        for j, (k, metrics) in enumerate(measured.items()):
            bad = [split for split, (loss, _) in metrics.items() if not math.isfinite(loss)]
            if bad:
                self._fail(k, f"{bad[0]} loss is non-finite after training", recipe.epochs)
                continue
            self.done[k] = self.setup.finished(self.names[k], self.seed, metrics,
                                               learned_state(model.member(j)), self.clock,
                                               self.history[k])  # fmt: skip


def _draws(model: nn.Module, input_shape: tuple[int, ...], device: torch.device) -> Tensor:
    """The state of the generator a training forward pass of ``model`` (a copy: batch
    statistics stay as they are) leaves, from a fixed one: what its random layers draw."""
    probe = copy.deepcopy(model).train()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), \
            torch.no_grad():
        torch.manual_seed(0)
        try:
            probe(torch.zeros(2, *input_shape, device=device))
        except RUN_ERRORS:  # a pass that breaks: no state matches it
            return torch.empty(0, dtype=torch.uint8)
        return (torch.cuda.get_rng_state(device) if device.type == "cuda"
                else torch.get_rng_state())  # fmt: skip


def _member_losses(logits: Tensor, y: Tensor) -> Tensor:
    """Each member's mean cross-entropy, from logits ``(K, B, classes)``."""
    k = logits.shape[0]
    losses = F.cross_entropy(logits.flatten(0, 1), y.repeat(k), reduction="none")
    return losses.view(k, -1).mean(1)


@torch.no_grad()
def evaluate_stack(
    model: StackedModel, data: Dataset, batch_size: int, device: torch.device, workers: int = 0,
    precision: str = "float32",
) -> list[tuple[float, float]]:
    """Each member's mean cross-entropy loss and accuracy on ``data``, as
    :func:`actbench.evaluate_model` measures one model's."""
    model.eval()
    k = len(model)
    loss = torch.zeros(k, dtype=torch.float64, device=device)
    correct = torch.zeros(k, dtype=torch.int64, device=device)
    count = 0
    for x, y in batches(data, batch_size, None, workers):
        x, y = x.to(device), y.to(device)
        with autocast(device, precision):
            logits = model(x)
        for j in range(k):
            loss[j] += F.cross_entropy(logits[j].float(), y, reduction="sum").double()
        correct += (logits.argmax(2) == y).sum(1)
        count += len(y)
    return [(loss[j].item() / max(count, 1), correct[j].item() / max(count, 1))
            for j in range(k)]  # fmt: skip
