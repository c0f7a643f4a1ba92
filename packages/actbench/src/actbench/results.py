"""What a training run records: its figures, its recipe, its learning curve
(:class:`Result`, one :class:`Epoch` per epoch trained)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel


class Epoch(BaseModel):
    """One point of a learning curve: the figures after ``epoch`` epochs. A loss that is
    not finite is None."""

    epoch: int
    train_loss: float | None
    val_accuracy: float
    val_loss: float | None
    test_accuracy: float
    test_loss: float | None


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
    #: the learning curve, one record per epoch trained (empty in results files written
    #: before act recorded curves, or with ``curves=False`` in the recipe)
    history: list[Epoch] = []
    #: CPU seconds the run took (an equal share of its stack's); None in older files
    cpu_s: float | None = None
    #: what computed the run (:func:`actcore.machine.describe_machine`), in order: more
    #: than one when a checkpointed run resumed on another machine; empty in older files
    machines: list[str] = []

    @classmethod
    def failed(cls, task: str, activation: str, seed: int, reason: str, *, chance: float,
               epochs: int, runtime_s: float, cpu_s: float | None = None,
               machines: Sequence[str] = (), recipe: dict[str, Any] | None = None,
               history: Sequence[Epoch] = ()) -> Result:
        """The one way a failed run is recorded: chance accuracy, no losses, the reason,
        the epoch it failed in and its curve up to then."""
        return cls(task=task, activation=activation, seed=seed, status="failed",
                   reason=reason, train_accuracy=chance, val_accuracy=chance,
                   test_accuracy=chance, train_loss=None, val_loss=None, test_loss=None,
                   runtime_s=runtime_s, cpu_s=cpu_s, machines=list(machines), epochs=epochs,
                   recipe=recipe, history=list(history))  # fmt: skip


#: the fields of a :class:`Result` that differ between two runs of the same training
TIMINGS = frozenset({"runtime_s", "cpu_s"})
