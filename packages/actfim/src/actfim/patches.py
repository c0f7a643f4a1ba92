"""Second moments of layer inputs (the K-FAC factor A), without materialising patches.

For a convolution the rows of A are indexed by (input channel, kernel offset), in the
order of ``weight.flatten(1)``, plus a trailing row for the bias. Following Grosse &
Martens (2016) and curvlinops' "expand" convention, A averages the patch outer products
over samples *and* output locations: ``A = 1/(N·T) Σ_n Σ_t p_nt p_ntᵀ``.

Two algorithms give the same matrix:

* :func:`_conv_blocks_direct` unfolds patches (in batch chunks, to bound memory) and
  multiplies them; it handles any stride, dilation and groups.
* :func:`_conv_blocks_lagged` (stride 1, one group) uses translation invariance: the
  block of A for kernel offsets (δ, δ') is the input's cross-channel correlation at lag
  d·(δ'−δ), summed over a window. Only the distinct lags with δ ≤ δ' are multiplied
  (13 instead of 81 for 3×3 kernels), each as one zero-copy matrix product over the
  flattened, zero-separated input; the few boundary rows/columns where a window differs
  from the full correlation are subtracted. That is ~6× fewer FLOPs than unfolding.
"""

from __future__ import annotations

import itertools
import math

import torch.nn.functional as F
from torch import Tensor, nn

ConvNd = nn.Conv1d | nn.Conv2d

# Unfolded chunks are kept below this many elements (256 MiB in float32).
_CHUNK_ELEMENTS = 1 << 26


def linear_input_moment(x: Tensor, bias: bool, stacks: int = 1) -> tuple[Tensor, int]:
    """Σ of x̃x̃ᵀ over samples and extra (sequence) dimensions, per stack of the batch
    (shape ``(stacks, d, d)``), and the count of terms in each.

    ``x̃`` is ``x`` with a trailing 1 when the layer has a bias.
    """
    x = x.reshape(stacks, -1, x.shape[-1])
    count = x.shape[1]
    xtx = x.transpose(1, 2) @ x
    if not bias:
        return xtx, count
    return _augment(xtx, x.sum(1), count), count


def conv_input_moment(x: Tensor, conv: ConvNd) -> tuple[Tensor, int]:
    """Σ over samples and output locations of the layer's (bias-augmented) patch outer
    products, per group: shape ``(groups, C_in/groups·K (+1), same)``, and the count.
    """
    x, padding = _explicit_padding(x, conv)
    geometry = _Geometry(x.shape[2:], conv.kernel_size, conv.stride, conv.dilation, padding)
    if conv.groups == 1 and all(s == 1 for s in conv.stride):
        blocks, sums = _conv_blocks_lagged(x, geometry)
        blocks, sums = blocks[None], sums[None]
    else:
        blocks, sums = _conv_blocks_direct(x, geometry, conv.groups)
    count = x.shape[0] * math.prod(geometry.out)
    if conv.bias is None:
        return blocks, count
    return _augment(blocks, sums, count), count


def _augment(blocks: Tensor, sums: Tensor, count: int) -> Tensor:
    """Append the bias row/column: [[B, s], [sᵀ, count]] for each group."""
    groups, n, _ = blocks.shape
    out = blocks.new_empty(groups, n + 1, n + 1)
    out[:, :n, :n] = blocks
    out[:, :n, n] = sums
    out[:, n, :n] = sums
    out[:, n, n] = count
    return out


def _explicit_padding(x: Tensor, conv: ConvNd) -> tuple[Tensor, list[tuple[int, int]]]:
    """The (left, right) zero padding per spatial axis; non-zero padding modes are
    applied to ``x`` here, as PyTorch does before a padding-free convolution."""
    dims = len(conv.kernel_size)
    if conv.padding_mode != "zeros":
        x = F.pad(x, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
        return x, [(0, 0)] * dims
    if conv.padding == "valid":
        return x, [(0, 0)] * dims
    if conv.padding == "same":
        pads = []
        for k, d in zip(conv.kernel_size, conv.dilation):
            total = d * (k - 1)
            pads.append((total // 2, total - total // 2))
        return x, pads
    return x, [(p, p) for p in conv.padding]


class _Geometry:
    """Spatial bookkeeping of one convolution: input size, kernel, padding, output size."""

    def __init__(self, size, kernel, stride, dilation, padding):
        self.size = tuple(size)
        self.kernel = tuple(kernel)
        self.stride = tuple(stride)
        self.dilation = tuple(dilation)
        self.padding = tuple(padding)
        self.out = tuple(
            (s + pl + pr - d * (k - 1) - 1) // st + 1
            for s, (pl, pr), d, k, st in zip(size, padding, dilation, kernel, stride)
        )
        if any(o <= 0 for o in self.out):
            raise ValueError(f"input {self.size} is smaller than the kernel's reach")

    @property
    def offsets(self) -> list[tuple[int, ...]]:
        """Kernel offsets δ in ``weight`` order (row-major over the kernel)."""
        return list(itertools.product(*(range(k) for k in self.kernel)))


def _conv_blocks_direct(x: Tensor, geo: _Geometry, groups: int) -> tuple[Tensor, Tensor]:
    """Patch second moments by explicit unfolding, in batch chunks."""
    n, c = x.shape[:2]
    k = math.prod(geo.kernel)
    t = math.prod(geo.out)
    cg = c // groups
    chunk = max(1, _CHUNK_ELEMENTS // max(1, c * k * t))
    blocks = x.new_zeros(groups, cg * k, cg * k)
    sums = x.new_zeros(groups, cg * k)
    for start in range(0, n, chunk):
        patches = _unfold(x[start : start + chunk], geo)  # (n, C·K, T), c-major rows
        patches = patches.transpose(0, 1).reshape(groups, cg * k, -1)
        blocks.baddbmm_(patches, patches.transpose(1, 2))
        sums += patches.sum(-1)
    return blocks, sums


def _unfold(x: Tensor, geo: _Geometry) -> Tensor:
    """Patches ``(N, C·K, T)`` of a zero-padded input, for 1-D or 2-D convolutions."""
    pads = [p for pair in reversed(geo.padding) for p in pair]
    x = F.pad(x, pads)
    if len(geo.kernel) == 1:
        x = x[:, :, None]
        kernel, dilation, stride = (1, *geo.kernel), (1, *geo.dilation), (1, *geo.stride)
    else:
        kernel, dilation, stride = geo.kernel, geo.dilation, geo.stride
    return F.unfold(x, kernel, dilation=dilation, stride=stride)


def _conv_blocks_lagged(x: Tensor, geo: _Geometry) -> tuple[Tensor, Tensor]:
    """Patch second moments of a stride-1, single-group convolution from lag
    correlations of the input (see the module docstring)."""
    n, c = x.shape[:2]
    dims = len(geo.size)
    reach = [d * (k - 1) for d, k in zip(geo.dilation, geo.kernel)]
    # Buffer (C, N, *B): the image at offset pl, and at least `reach` zeros between the
    # images along every axis, so flat shifts never pair two real pixels wrongly.
    buf_size = [s + max(pl + pr, r) for s, (pl, pr), r in zip(geo.size, geo.padding, reach)]
    buf = x.new_zeros(c, n, *buf_size)
    real = tuple(slice(pl, pl + s) for (pl, _), s in zip(geo.padding, geo.size))
    buf[(slice(None), slice(None), *real)] = x.transpose(0, 1)
    flat = buf.reshape(c, -1)
    strides = [math.prod(buf_size[i + 1 :]) for i in range(dims)]

    offsets = geo.offsets
    k = len(offsets)
    blocks = x.new_empty(c, k, c, k)
    cores: dict[tuple[int, ...], Tensor] = {}
    for i, delta in enumerate(offsets):
        for j in range(i, k):
            lag = tuple(d * (b - a) for d, a, b in zip(geo.dilation, delta, offsets[j]))
            if lag not in cores:
                shift = sum(lg * st for lg, st in zip(lag, strides))
                cores[lag] = flat[:, : flat.shape[1] - shift] @ flat[:, shift:].T
            block = cores[lag] - _outside_window(buf, geo, delta, lag)
            blocks[:, i, :, j] = block
            if j != i:
                blocks[:, j, :, i] = block.T

    # Bias terms: the input summed over the batch, then over each offset's window.
    summed = buf.sum(1)
    sums = x.new_empty(c, k)
    for i, delta in enumerate(offsets):
        window = tuple(
            slice(d * a, d * a + o) for d, a, o in zip(geo.dilation, delta, geo.out)
        )
        sums[:, i] = summed[(slice(None), *window)].sum(tuple(range(1, dims + 1)))
    return blocks.reshape(c * k, c * k), sums.reshape(c * k)


def _outside_window(buf: Tensor, geo: _Geometry, delta, lag) -> Tensor:
    """Σ x̃[u] x̃[u+lag]ᵀ over the real pixel pairs that lie outside offset δ's window.

    Per axis the pairs live in V = [pl+max(0,−lag), pl+S−max(0,lag)) and the window is
    W = [dδ, dδ+O); the part of V×…×V outside W×…×W is split into slabs:
    axis j outside W, earlier axes inside W, later axes anywhere in V.
    """
    c = buf.shape[0]
    total = buf.new_zeros(c, c)
    inside: list[tuple[int, int]] = []
    valid: list[tuple[int, int]] = []
    for (pl, _), s, d, a, o, lg in zip(
        geo.padding, geo.size, geo.dilation, delta, geo.out, lag
    ):
        lo, hi = pl + max(0, -lg), pl + s - max(0, lg)
        ilo = min(max(lo, d * a), hi)
        valid.append((lo, hi))
        inside.append((ilo, max(ilo, min(hi, d * a + o))))
    for axis in range(len(valid)):
        lo, hi = valid[axis]
        ilo, ihi = inside[axis]
        for part in ((lo, ilo), (ihi, hi)):
            if part[1] <= part[0]:
                continue
            ranges = [*inside[:axis], part, *valid[axis + 1 :]]
            if any(r1 <= r0 for r0, r1 in ranges):
                continue
            here = tuple(slice(r0, r1) for r0, r1 in ranges)
            there = tuple(slice(r0 + lg, r1 + lg) for (r0, r1), lg in zip(ranges, lag))
            left = buf[(slice(None), slice(None), *here)].reshape(c, -1)
            right = buf[(slice(None), slice(None), *there)].reshape(c, -1)
            total += left @ right.T
    return total
