"""Fashion-MNIST's four official IDX files, found where they lie and read in memory.

The files may sit in a data folder (``--data-root``, ``$ACT_DATA``, act's cache), in the
``FashionMNIST/raw`` folder torchvision downloads into, or where Debian's
``dataset-fashion-mnist`` package puts them; gzipped or not. They are decompressed in
memory, so act never writes into a folder it did not create. torchvision's own reader
needs uncompressed files on disk, which is why the few lines of the IDX format are here.
"""

from __future__ import annotations

import gzip
import math
import zlib
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


#: the most data an IDX file of this dataset may hold: the training images (60,000 of
#: 28 x 28 bytes) with room to spare; a header that claims more is refused before reading
MAX_BYTES = 64 * 2**20
#: the first labels of MNIST's official files, which have Fashion-MNIST's names
MNIST_LABELS = {True: bytes([5, 0, 4, 1, 9, 2, 1, 3, 1, 4]),
                False: bytes([7, 2, 1, 0, 4, 1, 4, 9, 5, 9])}  # fmt: skip
CLASSES = 10
_CHUNK = 1 << 20


def read_idx(path: Path, max_bytes: int = MAX_BYTES) -> np.ndarray:
    """An IDX file of unsigned bytes (``.gz`` or not) as an array of its shape. The header
    is checked first (in Python integers, against ``max_bytes``), and a gzipped file is
    decompressed a chunk at a time up to the size the header gives, so neither a corrupt
    header nor a small file that decompresses to gigabytes can exhaust memory."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[:2] != b"\0\0" or head[2] != IDX_UBYTE:
                raise ActError(f"{path} is not an IDX file of unsigned bytes")
            dims = f.read(4 * head[3])
            if len(dims) != 4 * head[3]:
                raise ActError(f"{path}: the header ends early")
            shape = tuple(int.from_bytes(dims[i : i + 4], "big") for i in range(0, len(dims), 4))
            size = math.prod(shape)
            if size > max_bytes:
                raise ActError(f"{path}: its header gives shape {shape}, {size:,} bytes, more "
                               f"than any file of this dataset holds ({max_bytes:,})")
            data = np.empty(size, np.uint8)
            view, done = memoryview(data), 0
            while done < size:
                got = f.readinto(view[done : done + _CHUNK])
                if not got:
                    raise ActError(f"{path}: {done:,} bytes of data for shape {shape}, "
                                   f"which needs {size:,}")
                done += got
            if f.read(1):
                raise ActError(f"{path}: more data than its header's shape {shape} holds")
    except (OSError, EOFError, zlib.error) as err:
        raise ActError(f"cannot read {path}: {err}") from None
    return data.reshape(shape)


def read(folder: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) and labels (N,) of the training or test set in ``folder``;
    labels out of 0-9, and MNIST's files under Fashion-MNIST's names, are refused."""
    paths = [_file(folder, name) or folder / name for name in FILES[train]]
    images, labels = (read_idx(path) for path in paths)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ActError(f"{folder}: images of shape {images.shape} but labels of shape "
                       f"{labels.shape}")  # fmt: skip
    if len(labels) and labels.max() >= CLASSES:
        bad = int(np.argmax(labels >= CLASSES))
        raise ActError(f"{paths[1]}: label {labels[bad]} at position {bad}; Fashion-MNIST's "
                       f"labels are 0-{CLASSES - 1} (the file is corrupt)")
    if labels[: len(MNIST_LABELS[train])].tobytes() == MNIST_LABELS[train]:
        raise ActError(f"{folder} holds MNIST's files (handwritten digits; their labels "
                       "begin as MNIST's do), not Fashion-MNIST's, under the same names: "
                       "point act at Fashion-MNIST's files")
    return images, labels
