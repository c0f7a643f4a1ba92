"""Datasets: digits splits, and torchvision formats written to disk and read back."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct

import numpy as np
import pytest
import torch
import torchvision.datasets
from PIL import Image

from actbench import TensorData, data_root, idx_files, image_folder
from actbench.augment import flip_and_shift
from actbench.datasets import TorchvisionImages
from actbench.hookspecs import DATASETS
from actcore import ActError
from actcore.cli import main
from actcore.plugins import registry


def source(name: str):
    return registry(DATASETS).get(name)


def test_digits_splits_are_fixed_disjoint_and_normalised():
    digits = source("digits")
    splits = {s: digits.load(s) for s in ("train", "val", "test")}
    assert [len(splits[s]) for s in ("train", "val", "test")] == [1077, 360, 360]
    x, y = splits["train"][0]
    assert x.dtype == torch.float32 and x.shape == (1, 8, 8) and y.dtype == torch.int64
    rows = {s: {(*d.x[i].flatten().tolist(), int(d.y[i])) for i in range(len(d))}
            for s, d in splits.items()}  # fmt: skip
    assert not rows["train"] & rows["val"] and not rows["val"] & rows["test"]
    assert all(float(d.x.min()) >= 0.0 and float(d.x.max()) <= 1.0 for d in splits.values())
    assert torch.equal(digits.load("val").x, splits["val"].x)  # same split every time
    assert set(splits["val"].y.tolist()) == set(range(10))


def _idx(path, magic: int, array: np.ndarray) -> None:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fashion_root(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = {"train": rng.integers(0, 256, (50, 28, 28)),
              "t10k": rng.integers(0, 256, (7, 28, 28))}  # fmt: skip
    for prefix, imgs in images.items():
        _idx(raw / f"{prefix}-images-idx3-ubyte.gz", 2051, imgs)
        _idx(raw / f"{prefix}-labels-idx1-ubyte.gz", 2049, np.arange(len(imgs)) % 10)
    return tmp_path, images


def test_fashion_mnist_reads_gzipped_idx_files(fashion_root):
    root, images = fashion_root
    fashion = source("fashion-mnist")
    train, val, test = (fashion.load(s, root=root) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (45, 5, 7)  # 10% of training data for val
    x, y = test[3]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and y.item() == 3
    assert torch.allclose(x[0], torch.tensor(images["t10k"][3], dtype=torch.float32) / 255)
    # train + val are exactly the official training images
    seen = torch.cat([train.x, val.x]).flatten(1).tolist()
    assert sorted(seen) == sorted(torch.tensor(images["train"]).flatten(1).tolist())


def test_fashion_mnist_reads_from_act_data(fashion_root, monkeypatch):
    root, _ = fashion_root
    monkeypatch.setenv("ACT_DATA", str(root))
    assert data_root() == root
    assert len(source("fashion-mnist").load("test")) == 7


def _write_fashion(folder, train: int, test: int, gz: bool, value: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", train), ("t10k", test)):
        for kind, magic, array in (("images", 2051, np.full((n, 28, 28), value)),
                                   ("labels", 2049, np.arange(n) % 10)):  # fmt: skip
            path = folder / f"{prefix}-{kind}-idx{array.ndim}-ubyte"
            _idx(path.with_name(path.name + ".gz"), magic, array)
            if not gz:  # the same bytes, decompressed
                path.write_bytes(gzip.decompress(path.with_name(path.name + ".gz").read_bytes()))
                path.with_name(path.name + ".gz").unlink()


@pytest.fixture
def debian(tmp_path, monkeypatch):
    """A stand-in for Debian's folder (so these tests do not depend on this machine)."""
    folder = tmp_path / "debian"
    monkeypatch.setattr(idx_files, "DEBIAN_FOLDER", folder)
    return folder


def _files(folder) -> dict:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_fashion_mnist_plain_files_in_any_folder_and_nothing_written(tmp_path, debian):
    root = tmp_path / "mine"
    _write_fashion(root, train=20, test=3, gz=False, value=7)
    before = _files(root)
    test = source("fashion-mnist").load("test", root=root)
    assert len(test) == 3 and torch.allclose(test.x.float(), torch.full((3, 1, 28, 28), 7.0))
    assert source("fashion-mnist").where(root) == str(root.resolve())
    assert _files(root) == before  # nothing decompressed or written next to the files


def test_fashion_mnist_found_in_debians_folder_and_an_explicit_root_wins(tmp_path, debian):
    _write_fashion(debian, train=10, test=4, gz=True, value=1)
    empty = tmp_path / "empty"  # no files here: Debian's folder is used
    assert len(source("fashion-mnist").load("test", root=empty)) == 4
    assert source("fashion-mnist").where(empty) == str(debian.resolve())
    mine = tmp_path / "mine"  # files here: they win over Debian's
    _write_fashion(mine / "FashionMNIST" / "raw", train=10, test=6, gz=True, value=2)
    assert len(source("fashion-mnist").load("test", root=mine)) == 6
    assert source("fashion-mnist").where(mine) == str((mine / "FashionMNIST" / "raw").resolve())


def test_missing_fashion_mnist_names_the_three_ways_to_get_it(tmp_path, debian, capsys):
    with pytest.raises(ActError) as err:
        source("fashion-mnist").load("train", root=tmp_path / "none")
    message = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "--download" in message and "--data-root" in message and "$ACT_DATA" in message
    assert str(tmp_path / "none") in message
    assert main(["bench", "datasets", "--data-root", str(tmp_path / "none")]) == 0
    out = capsys.readouterr().out
    assert "missing: Fashion-MNIST's four IDX files" in out
    assert "found: built in (scikit-learn)" in out
    _write_fashion(debian, train=10, test=4, gz=True)
    assert main(["bench", "datasets", "--data-root", str(tmp_path / "none")]) == 0
    assert f"found: {debian.resolve()}" in capsys.readouterr().out


def test_a_corrupted_idx_file_is_named(tmp_path, debian):
    root = tmp_path / "bad"
    _write_fashion(root, train=10, test=4, gz=False)
    labels = root / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-1])  # one label short
    with pytest.raises(ActError, match="t10k-labels-idx1-ubyte: 3 bytes of data for shape"):
        source("fashion-mnist").load("test", root=root)
    (root / "t10k-images-idx3-ubyte").write_bytes(b"not an idx file")
    with pytest.raises(ActError, match="t10k-images-idx3-ubyte is not an IDX file"):
        source("fashion-mnist").load("test", root=root)


def _cifar_batch(path, n: int, label_key: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    entry = {"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
             label_key: [int(i) % 10 for i in range(n)]}  # fmt: skip
    with open(path, "wb") as f:
        pickle.dump(entry, f)


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_cifar10_reads_python_pickles_with_checksums(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    names = [f"data_batch_{i}" for i in range(1, 6)]
    for i, name in enumerate(names):
        _cifar_batch(folder / name, 4, "labels", seed=i)
    _cifar_batch(folder / "test_batch", 6, "labels", seed=9)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    # the real integrity check runs, against our files' checksums
    cls = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", [[n, _md5(folder / n)] for n in names])
    monkeypatch.setattr(cls, "test_list", [["test_batch", _md5(folder / "test_batch")]])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": _md5(folder / "batches.meta")})
    cifar = source("cifar10")
    train, val, test = (cifar.load(s, root=tmp_path) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (18, 2, 6)
    x, y = test[1]
    with open(folder / "test_batch", "rb") as f:
        expected = pickle.load(f)["data"][1].reshape(3, 32, 32)
    assert x.shape == (3, 32, 32) and y.item() == 1
    assert torch.allclose(x, torch.tensor(expected, dtype=torch.float32) / 255)
    augmented = cifar.load("train", root=tmp_path, augment=True)
    assert augmented.max_shift == 4
    assert cifar.load("val", root=tmp_path, augment=True).max_shift is None
    # a corrupted file is reported, not loaded
    (folder / "test_batch").write_bytes(b"garbage")
    TorchvisionImages.arrays.cache_clear()  # loaded arrays are cached per process
    with pytest.raises(ActError, match="cifar-10-batches-py"):
        cifar.load("test", root=tmp_path)


def test_missing_files_say_where_and_how(tmp_path):
    with pytest.raises(ActError) as err:
        source("cifar100").load("train", root=tmp_path)
    assert str(tmp_path / "cifar-100-python") in str(err.value)
    assert "--download" in str(err.value)
    with pytest.raises(ActError, match="imagenette2-320"):
        source("imagenette").load("train", root=tmp_path)
    with pytest.raises(ActError, match="unknown split"):
        source("digits").load("dev")


def test_image_folder_trees(tmp_path):
    rng = np.random.default_rng(0)
    for split, count in (("train", 10), ("val", 3)):
        for label in ("cat", "dog"):
            folder = tmp_path / "pets" / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (20, 24, 3)).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    pets = image_folder("pets", "pets", num_classes=2, size=16)
    assert pets.input_shape == (3, 16, 16)
    train, val, test = (pets.load(s, root=tmp_path) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (18, 2, 6)
    x, y = pets.load("train", root=tmp_path, augment=True)[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and float(x.min()) >= 0
    assert y.dtype == torch.int64 and y.ndim == 0
    with pytest.raises(ActError, match="2 class folders, expected 3"):
        image_folder("pets", "pets", num_classes=3).load("test", root=tmp_path)


def test_flip_and_shift_matches_a_per_image_reference():
    images = torch.arange(2 * 3 * 5 * 6, dtype=torch.float32).reshape(2, 3, 5, 6) + 1
    out = flip_and_shift(images, 2, torch.Generator().manual_seed(1))
    # replay the same random draws and build each image by hand
    g = torch.Generator().manual_seed(1)
    flips = torch.rand(2, generator=g) < 0.5
    dy = torch.randint(0, 5, (2,), generator=g)
    dx = torch.randint(0, 5, (2,), generator=g)
    for n in range(2):
        img = images[n].flip(-1) if flips[n] else images[n]
        expected = torch.zeros_like(img)
        for i in range(5):
            for j in range(6):
                si, sj = i + int(dy[n]) - 2, j + int(dx[n]) - 2
                if 0 <= si < 5 and 0 <= sj < 6:
                    expected[:, i, j] = img[:, si, sj]
        assert torch.equal(out[n], expected)


def test_tensor_data_batches_cover_every_example_once():
    data = TensorData(torch.arange(10, dtype=torch.uint8).reshape(10, 1, 1, 1), torch.arange(10))
    batches = list(data.batches(4, torch.Generator().manual_seed(0)))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    labels = torch.cat([y for _, y in batches])
    assert sorted(labels.tolist()) == list(range(10))
    for x, y in batches:
        assert torch.allclose(x.flatten(), y.float() / 255)


def test_an_idx_header_too_large_for_memory_is_refused_before_reading(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(struct.pack(">I", 2051) + struct.pack(">III", 2**31, 2**31, 4) + b"\0" * 8)
    with pytest.raises(ActError, match=r"shape \(2147483648, 2147483648, 4\), "
                                       r"18,446,744,073,709,551,616 bytes, more than"):
        idx_files.read_idx(path)


def test_a_gzip_bomb_is_read_no_further_than_its_header_says(tmp_path):
    """An honest-looking header, then 1 GB of zeros that gzip packs into 1 MB: reading
    stops one byte past the header's size, instead of decompressing it all."""
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    zeros = bytes(2**20)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(struct.pack(">II", 2049, 10) + bytes(10))
        for _ in range(1024):
            f.write(zeros)
    assert path.stat().st_size < 8 * 2**20
    import tracemalloc

    tracemalloc.start()
    with pytest.raises(ActError, match=r"more data than its header's shape \(10,\) holds"):
        idx_files.read_idx(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 * 2**20  # not the gigabyte


def test_labels_outside_the_ten_classes_are_a_corrupt_file(tmp_path, debian):
    root = tmp_path / "bad"
    _write_fashion(root, train=10, test=4, gz=False)
    labels = root / "t10k-labels-idx1-ubyte"
    data = bytearray(labels.read_bytes())
    data[-2] = 200
    labels.write_bytes(bytes(data))
    with pytest.raises(ActError, match=r"label 200 at position 2; Fashion-MNIST's labels "
                                       r"are 0-9 \(the file is corrupt\)"):
        source("fashion-mnist").load("test", root=root)


def test_mnist_under_fashion_mnists_names_is_named(tmp_path, debian):
    root = tmp_path / "mnist"
    _write_fashion(root, train=12, test=10, gz=False)
    labels = root / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:8] + bytes([7, 2, 1, 0, 4, 1, 4, 9, 5, 9]))
    with pytest.raises(ActError, match="holds MNIST's files"):
        source("fashion-mnist").load("test", root=root)
