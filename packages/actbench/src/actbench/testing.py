"""Tiny stand-ins for datasets a test machine lacks, in the official layouts, so a task's
code path (reading, training, Fisher batch) runs on files the test writes itself."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def write_image_tree(root: str | os.PathLike[str], folder: str, classes: int,
                     per_class: int = 1, test_folder: str = "val", size: int = 12,
                     filled: int | None = None, seed: int = 0) -> Path:
    """``<root>/<folder>/{train,<test_folder>}/<class>/<i>.png`` of random RGB images,
    ``per_class`` in each of the first ``filled`` classes (default all; the other class
    folders are empty, which keeps a 1,000-class tree small); returns the folder."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = Path(root) / folder
    for split in ("train", test_folder):
        for label in range(classes):
            where = base / split / f"c{label:04d}"
            where.mkdir(parents=True, exist_ok=True)
            for i in range(per_class if filled is None or label < filled else 0):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(where / f"{i}.png")
    return base
