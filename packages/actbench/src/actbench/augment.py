"""The papers' training augmentations, applied to whole batches of image tensors.

Per-sample Python transforms dominate the step time of small CNNs on a CPU, so the
in-memory datasets augment a batch at once: random horizontal flips and random shifts
(zero padding + a random crop back to the original size, one offset per image).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def flip_and_shift(images: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Flip each image left-right with probability 1/2 and shift it by up to ``max_shift``
    pixels in each direction (vacated pixels are zero). ``images`` is (N, C, H, W)."""
    n, c, h, w = images.shape
    flip = torch.rand(n, generator=generator) < 0.5
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    if max_shift <= 0:
        return images
    padded = F.pad(images, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    batch = torch.arange(n)[:, None, None, None]
    channel = torch.arange(c)[None, :, None, None]
    return padded[batch, channel, rows, cols]
