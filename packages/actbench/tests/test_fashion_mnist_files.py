"""The real Fashion-MNIST files, where Debian's ``dataset-fashion-mnist`` (or a data
folder) has them; CI installs the package, so these run there."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import actbench
from actbench import idx_files
from actbench.hookspecs import DATASETS
from actcore import ActError
from actcore.plugins import registry


def _folder() -> Path | None:
    try:
        return Path(registry(DATASETS).get("fashion-mnist").where())
    except ActError:
        return None


FOLDER = _folder()
pytestmark = pytest.mark.skipif(
    FOLDER is None, reason="Fashion-MNIST's files are not on this machine "
    "(apt-get install dataset-fashion-mnist)"
)


def test_the_files_are_the_official_ones():
    """Debian recompresses the files (other .gz bytes than torchvision's MD5 sums), so the
    contents are checked: the official first labels, and the training images' mean pixel
    (0.2860 of 255, the figure everyone normalises Fashion-MNIST with)."""
    train_images, train_labels = idx_files.read(FOLDER, train=True)
    test_images, test_labels = idx_files.read(FOLDER, train=False)
    assert train_labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert test_labels[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert train_images.mean() / 255 == pytest.approx(0.2860, abs=5e-5)
    assert train_images.shape == (60_000, 28, 28) and test_images.shape == (10_000, 28, 28)


def test_official_sizes_classes_and_splits():
    fashion = registry(DATASETS).get("fashion-mnist")
    splits = {s: fashion.load(s) for s in ("train", "val", "test")}
    assert [len(splits[s]) for s in ("train", "val", "test")] == [54_000, 6_000, 10_000]
    for split in splits.values():
        assert split.x.dtype == torch.uint8 and split.x.shape[1:] == (1, 28, 28)
    train_labels = torch.cat([splits["train"].y, splits["val"].y])
    assert torch.bincount(train_labels).tolist() == [6_000] * 10
    assert torch.bincount(splits["test"].y).tolist() == [1_000] * 10
    images, labels = idx_files.read(FOLDER, train=False)
    assert torch.equal(splits["test"].x[:, 0], torch.from_numpy(images.copy()))
    assert torch.equal(splits["test"].y, torch.from_numpy(labels).long())


def test_lenet5_learns_fashion_mnist_in_seconds():
    """3,000 training images, one epoch: far above chance (10%) only if images and labels
    belong together. (Measured: 61.8% test accuracy.)"""
    result = actbench.train("lenet5-fashion-mnist", "relu", 0, epochs=1, train_images=3_000,
                            lr=1e-3, threads=1)
    assert result.status == "ok" and result.epochs == 1
    assert result.test_accuracy > 0.45 and result.val_accuracy > 0.45


def test_the_convolutional_table_task_trains_and_its_fisher_spectra_are_computed():
    """allconv-fashion-mnist, the convolutional table's task: its recipe learns (pilots:
    84.9-85.5% validation over 10 seeds; chance is 10%), and its Fisher CDFs (BatchNorm
    in train mode: one function at a time) are valid for ReLU and invalid for a function
    that silences the network."""
    from actbench.fisher import fisher_batch, model_factory
    from actfim.batch import spectra_for_activations

    result = actbench.train("allconv-fashion-mnist", "relu", 0)
    assert result.status == "ok" and result.val_accuracy > 0.8 and result.history == []
    inputs, targets = fisher_batch("fashion-mnist", 32, 0, None)
    records = spectra_for_activations(model_factory("allconv-fashion-mnist"),
                                      ["relu(x)", "zero(x)"], inputs, targets, progress=False)
    assert records["relu(x)"].valid and not records["zero(x)"].valid
