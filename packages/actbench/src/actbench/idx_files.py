"""Fashion-MNIST's four official IDX files, found where they lie and read in memory.

The files may sit in a data folder (``--data-root``, ``$ACT_DATA``, act's cache), in the
``FashionMNIST/raw`` folder torchvision downloads into, or where Debian's
``dataset-fashion-mnist`` package puts them; gzipped or not. They are decompressed in
memory, so act never writes into a folder it did not create. torchvision's own reader
needs uncompressed files on disk, which is why the few lines of the IDX format are here.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from actcore import ActError

DEBIAN_FOLDER = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}  # keyed by "is the training set"
SUBFOLDERS = (".", "FashionMNIST/raw", "fashion-mnist")
IDX_UBYTE = 0x08  # the IDX type code of unsigned bytes


def _file(folder: Path, name: str) -> Path | None:
    for path in (folder / name, folder / f"{name}.gz"):
        if path.is_file():
            return path
    return None


def folders(root: Path) -> list[Path]:
    """Where to look, in order: ``root`` and its usual subfolders, then Debian's folder."""
    return [*(root / sub for sub in SUBFOLDERS), DEBIAN_FOLDER]


def find(root: Path) -> Path:
    """The first folder (see :func:`folders`) that holds all four files."""
    names = [name for pair in FILES.values() for name in pair]
    for folder in folders(root):
        if all(_file(folder, name) is not None for name in names):
            return folder.resolve()
    raise missing(root)


def missing(root: Path) -> ActError:
    """The error for files found nowhere: it names the three ways to get them."""
    looked = ", ".join(str(f) for f in folders(root))
    return ActError(
        f"Fashion-MNIST's four IDX files (train-images-idx3-ubyte[.gz], ...) are not in "
        f"any of {looked}. Get them one of three ways: `apt-get install {DEBIAN_PACKAGE}` "
        f"(Debian/Ubuntu; puts them in {DEBIAN_FOLDER}); `--download` when online "
        f"(load(..., download=True)); or put the four official files in a folder and "
        f"point --data-root or $ACT_DATA at it"
    )


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (``.gz`` or not) as an array of its shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise ActError(f"cannot read {path}: {err}") from None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != IDX_UBYTE:
        raise ActError(f"{path} is not an IDX file of unsigned bytes")
    dims = data[3]
    header = 4 + 4 * dims
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    if len(data) != header + int(np.prod(shape)):
        raise ActError(f"{path}: {len(data) - header} bytes of data for shape {shape}")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def read(folder: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) and labels (N,) of the training or test set in ``folder``."""
    images, labels = (read_idx(_file(folder, name) or folder / name) for name in FILES[train])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ActError(f"{folder}: images of shape {images.shape} but labels of shape "
                       f"{labels.shape}")  # fmt: skip
    return images, labels
