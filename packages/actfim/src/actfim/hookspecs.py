"""actfim's hook: a batch of a named dataset for ``act fim --dataset``.

actfim computes spectra on any inputs; datasets belong to a higher package (actbench). As
in pytest, the package that calls a hook declares it, from its plugin's ``act_addhooks``,
and the package that knows the answer implements it, so actfim never imports actbench.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from actcore.hookspecs import hookspec


class DatasetBatch(NamedTuple):
    """A Fisher batch of a dataset: inputs, labels, and the dataset's input shape and
    number of classes."""

    inputs: Tensor
    targets: Tensor
    input_shape: tuple[int, ...]
    num_classes: int


@hookspec(firstresult=True)
def act_dataset_batch(dataset: str, size: int, seed: int, root: str | None,
                      download: bool) -> DatasetBatch | None:
    """Return ``size`` training examples of ``dataset`` drawn with ``seed``, or None when
    the plugin has no datasets; an unknown name raises :class:`actcore.ActError`."""
