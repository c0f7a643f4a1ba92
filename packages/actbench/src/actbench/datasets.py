"""Datasets: digits built in, torchvision datasets and ImageFolder trees from a data folder.

Every dataset has three splits. ``test`` is the official test set; ``val`` is carved from
the official training data with a fixed seed (the benchmarks report validation accuracy)
and ``train`` is the rest. Small datasets live in memory as :class:`TensorData`, which the
trainer batches without a DataLoader. Files are looked for under ``root``, else
``$ACT_DATA``, else ``~/.cache/act/data`` (Fashion-MNIST also where Debian's package puts
it: :mod:`actbench.idx_files`); they are downloaded only when asked.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from actbench import idx_files
from actbench.augment import flip_and_shift
from actcore import ActError

Split = Literal["train", "val", "test"]
SPLITS: tuple[str, ...] = ("train", "val", "test")
DATA_ENV = "ACT_DATA"
SPLIT_SEED = 0  # the validation split never depends on the training seed
VAL_FRACTION = 0.1


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The data folder: ``root``, else ``$ACT_DATA``, else ``~/.cache/act/data``."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return Path.home() / ".cache" / "act" / "data"


class TensorData(Dataset):
    """Labelled images held in memory; ``uint8`` pixels are scaled by 1/255 on access.

    With ``max_shift`` set (augmentation on), batches get random flips and shifts.
    """

    def __init__(self, x: Tensor, y: Tensor, max_shift: int | None = None):
        if len(x) != len(y):
            raise ValueError(f"{len(x)} inputs but {len(y)} labels")
        self.x = x
        self.y = y.long()
        self.max_shift = max_shift

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        x, y = self.batch(torch.tensor([index]))
        return x[0], y[0]

    def batch(
        self, index: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """The examples at ``index`` as float32 inputs and int64 labels, augmented if on."""
        x = self.x[index]
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x
        if self.max_shift is not None:
            x = flip_and_shift(x, self.max_shift, generator or torch.default_generator)
        return x, self.y[index]

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Mini-batches in order, or shuffled when a ``generator`` is given."""
        n = len(self)
        order = torch.arange(n) if generator is None else torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            yield self.batch(order[start : start + batch_size], generator)


def split_indices(n: int, split: str, val_count: int) -> Tensor:
    """Indices of ``split`` ('train' or 'val') among ``n`` official training examples."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    return order[:val_count] if split == "val" else order[val_count:]


def _in_memory(x: Tensor, y: Tensor, split: str, max_shift: int | None) -> TensorData:
    """``split`` of an official (train, test) pair of arrays: ``x, y`` are the test set's
    when ``split`` is 'test', else the training set's, which 'train' and 'val' share."""
    if split != "test":
        index = split_indices(len(y), split, round(VAL_FRACTION * len(y)))
        x, y = x[index], y[index]
    return TensorData(x, y, max_shift)


Loader = Callable[[str, Path, bool, bool], Dataset]
Locator = Callable[[Path], str]


@dataclass(frozen=True)
class DataSource:
    """A registered dataset: its shape, classes, a loader of its splits and, optionally,
    a locator that says where its files are (or raises :class:`ActError` saying why not)."""

    name: str
    description: str
    input_shape: tuple[int, ...]
    num_classes: int
    loader: Loader
    locator: Locator | None = None

    def load(
        self,
        split: Split = "train",
        root: str | os.PathLike[str] | None = None,
        download: bool = False,
        augment: bool = False,
    ) -> Dataset:
        """The ``split`` as a Dataset of (float32 input, int64 label) pairs."""
        if split not in SPLITS:
            raise ActError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        return self.loader(split, data_root(root), download, augment and split == "train")

    def where(self, root: str | os.PathLike[str] | None = None) -> str:
        """Where the files are found, without loading them; :class:`ActError` says why
        they are not."""
        if self.locator is None:
            return "(its plugin does not say)"
        return self.locator(data_root(root))


# --- digits (scikit-learn, offline) -----------------------------------------------------

DIGITS_HOLDOUT = 360  # examples each for validation and test, of 1,797


@functools.cache
def _digits() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.from_numpy(data.images.astype(np.float32) / 16.0).unsqueeze(1)
    return x, torch.from_numpy(data.target).long()


def _load_digits(split: str, root: Path, download: bool, augment: bool) -> Dataset:
    x, y = _digits()
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(SPLIT_SEED))
    parts = {
        "test": order[:DIGITS_HOLDOUT],
        "val": order[DIGITS_HOLDOUT : 2 * DIGITS_HOLDOUT],
        "train": order[2 * DIGITS_HOLDOUT :],
    }
    index = parts[split]
    return TensorData(x[index], y[index])


# --- torchvision datasets read from the data folder -----------------------------------


@dataclass(frozen=True)
class TorchvisionImages:
    """How to read one torchvision dataset, and what to tell a user who lacks it."""

    cls_name: str
    where: str  # files expected below the root
    max_shift: int

    def locate(self, root: Path) -> str:
        folder = root / self.where
        if not folder.is_dir():
            raise self.missing(root, FileNotFoundError(f"no folder {folder}"))
        return str(folder)

    def missing(self, root: Path, err: Exception) -> ActError:
        return ActError(
            f"dataset files not found or corrupted under {root / self.where} ({err}); "
            f"download them with `--download` (load(..., download=True)), or put the "
            f"official files there, or point --data-root / ${DATA_ENV} at a folder that "
            f"has them"
        )

    @functools.cache  # noqa: B019 (a handful of module-level instances)
    def arrays(self, root: Path, train: bool, download: bool) -> tuple[Tensor, Tensor]:
        import torchvision.datasets

        cls = getattr(torchvision.datasets, self.cls_name)
        try:
            ds = cls(str(root), train=train, download=download)
        except RuntimeError as err:
            raise self.missing(root, err) from None
        except OSError as err:  # network errors during a download
            raise ActError(f"could not download {self.cls_name} into {root}: {err}") from None
        data = torch.as_tensor(np.asarray(ds.data))
        x = data.unsqueeze(1) if data.ndim == 3 else data.permute(0, 3, 1, 2)
        return x.contiguous(), torch.as_tensor(np.asarray(ds.targets)).long()

    def load(self, split: str, root: Path, download: bool, augment: bool) -> Dataset:
        x, y = self.arrays(root, split != "test", download)
        return _in_memory(x, y, split, self.max_shift if augment else None)


CIFAR10 = TorchvisionImages("CIFAR10", "cifar-10-batches-py", max_shift=4)
CIFAR100 = TorchvisionImages("CIFAR100", "cifar-100-python", max_shift=4)


# --- Fashion-MNIST's IDX files, wherever they are ------------------------------------

FASHION_MNIST_SHIFT = 3


@functools.cache
def _fashion_mnist(root: Path, train: bool, download: bool) -> tuple[Tensor, Tensor]:
    try:
        folder = idx_files.find(root)
    except ActError:
        if not download:
            raise
        import torchvision.datasets

        try:  # into root/FashionMNIST/raw: act's cache, or the folder the user named
            torchvision.datasets.FashionMNIST(str(root), train=train, download=True)
        except (OSError, RuntimeError) as err:
            raise ActError(f"could not download Fashion-MNIST into {root}: {err}") from None
        folder = idx_files.find(root)
    images, labels = idx_files.read(folder, train)
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def _load_fashion_mnist(split: str, root: Path, download: bool, augment: bool) -> Dataset:
    x, y = _fashion_mnist(root, split != "test", download)
    return _in_memory(x, y, split, FASHION_MNIST_SHIFT if augment else None)


def _locate_fashion_mnist(root: Path) -> str:
    return str(idx_files.find(root))


# --- ImageFolder trees (Imagenette, ImageNet, your own) -------------------------------


def _label(target: int) -> Tensor:
    return torch.tensor(target, dtype=torch.int64)


def image_folder(
    name: str,
    folder: str,
    num_classes: int,
    size: int = 224,
    description: str = "",
    test_folder: str = "val",
    fetch: Callable[[Path], None] | None = None,
) -> DataSource:
    """A dataset read from ``<root>/<folder>/train/<class>/*`` and ``.../<test_folder>/...``.

    Training uses ImageNet-style random resized crops and flips; evaluation resizes and
    centre-crops to ``size``. ``fetch(root)`` downloads the tree when asked, if given.
    """

    def load(split: str, root: Path, download: bool, augment: bool) -> Dataset:
        from torchvision import datasets, transforms

        base = root / folder
        if download and fetch is not None and not base.exists():
            try:
                fetch(root)
            except (OSError, RuntimeError) as err:
                raise ActError(f"could not download {name} into {root}: {err}") from None
        sub = base / (test_folder if split == "test" else "train")
        if not sub.is_dir():
            how = "run with `--download`, or " if fetch is not None else ""
            raise ActError(
                f"dataset {name!r}: no image folder at {sub}; {how}put the "
                f"{folder}/train/<class>/ and {folder}/{test_folder}/<class>/ image "
                f"trees under the data root (--data-root or ${DATA_ENV})"
            )
        if augment:
            tf = transforms.Compose([
                transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
            ])  # fmt: skip
        else:
            tf = transforms.Compose([
                transforms.Resize(round(size * 256 / 224)), transforms.CenterCrop(size),
                transforms.ToTensor(),
            ])  # fmt: skip
        ds = datasets.ImageFolder(str(sub), transform=tf, target_transform=_label,
                                  allow_empty=True)  # a class folder may hold no image yet
        if len(ds.classes) != num_classes:
            raise ActError(
                f"dataset {name!r}: {sub} has {len(ds.classes)} class folders, expected "
                f"{num_classes}"
            )
        if split == "test":
            return ds
        index = split_indices(len(ds), split, round(VAL_FRACTION * len(ds)))
        return Subset(ds, index.tolist())

    def locate(root: Path) -> str:
        for sub in ("train", test_folder):
            if not (root / folder / sub).is_dir():
                raise ActError(f"no image folder at {root / folder / sub}")
        return str(root / folder)

    return DataSource(name, description or f"ImageFolder tree {folder}/", (3, size, size),
                      num_classes, load, locate)  # fmt: skip


def _fetch_imagenette(root: Path) -> None:
    from torchvision.datasets import Imagenette

    Imagenette(str(root), split="train", size="320px", download=True)


def builtin_datasets() -> list[DataSource]:
    return [
        DataSource("digits", "scikit-learn 8x8 digits, 1,797 images (offline)", (1, 8, 8), 10,
                   _load_digits, lambda root: "built in (scikit-learn)"),
        DataSource("fashion-mnist", "Fashion-MNIST 28x28 grey, 60k+10k (official IDX files)",
                   (1, 28, 28), 10, _load_fashion_mnist, _locate_fashion_mnist),
        DataSource("cifar10", "CIFAR-10 32x32 colour, 50k+10k (torchvision)", (3, 32, 32), 10,
                   CIFAR10.load, CIFAR10.locate),
        DataSource("cifar100", "CIFAR-100 32x32 colour, 50k+10k (torchvision)", (3, 32, 32),
                   100, CIFAR100.load, CIFAR100.locate),
        image_folder("imagenette", "imagenette2-320", 10, 224,
                     "Imagenette (10 ImageNet classes), 224 crops", fetch=_fetch_imagenette),
        image_folder("imagenet", "imagenet", 1000, 227,
                     "ILSVRC-2012 ImageFolder tree (train/, val/), 227 crops (AlexNet)"),
        image_folder("imagenet-224", "imagenet", 1000, 224,
                     "ILSVRC-2012 ImageFolder tree (train/, val/), 224 crops"),
    ]  # fmt: skip
