"""Second moments of layer inputs (the K-FAC factor A), without materialising patches.

For a convolution the rows of A are indexed by (input channel, kernel offset), in the
order of ``weight.flatten(1)``, plus a trailing row for the bias. Following Grosse &
Martens (2016) and curvlinops' "expand" convention, A averages the patch outer products
over samples *and* output locations: ``A = 1/(N·T) Σ_n Σ_t p_nt p_ntᵀ``.

Two algorithms give the same matrix:

* :func:`_conv_blocks_direct` gathers the patches (one strided slice per kernel offset,
  in batch chunks to bound memory) and multiplies them, upper block triangle only; it
  handles any stride, dilation and groups.
* :func:`_conv_blocks_lagged` (stride 1, one group) uses translation invariance: the
  block of A for kernel offsets (δ, δ') is the input's cross-channel correlation at lag
  d·(δ'−δ), summed over a window. Only the distinct lags with δ ≤ δ' are needed (13
  instead of 81 blocks for 3×3 kernels). They come either from one zero-copy matrix
  product per lag over the flattened, zero-separated input, or, where it needs fewer
  FLOPs, from the images' cross-power spectra (one C×C product per frequency, then the
  inverse transform at those lags only). The boundary rows/columns where a window
  differs from the full correlation are subtracted, each slab product computed once.
"""

from __future__ import annotations

import itertools
import math

import torch
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
    """Patch second moments from explicit patches, in batch chunks.

    The patches are gathered by one strided slice per kernel offset straight into the
    ``(groups, C/groups·K, n·T)`` layout the product wants (no unfold, no transposed
    copy), and only the upper block triangle of the symmetric product is multiplied.
    """
    n, c = x.shape[:2]
    k = math.prod(geo.kernel)
    t = math.prod(geo.out)
    cg = c // groups
    chunk = max(1, _CHUNK_ELEMENTS // max(1, c * k * t))
    blocks = x.new_zeros(groups, cg * k, cg * k)
    sums = x.new_zeros(groups, cg * k)
    for start in range(0, n, chunk):
        patches = _patches(x[start : start + chunk], geo).reshape(groups, cg * k, -1)
        _add_gram(blocks, patches)
        sums += patches.sum(-1)
    return blocks, sums


def _patches(x: Tensor, geo: _Geometry) -> Tensor:
    """Patches of the zero-padded input as ``(C, K, N·T)``: rows in ``weight.flatten(1)``
    order, one strided slice of the input per kernel offset."""
    n, c = x.shape[:2]
    x = _in_buffer(x, geo, [s + pl + pr for s, (pl, pr) in zip(geo.size, geo.padding)])
    out = x.new_empty(c, len(geo.offsets), n, *geo.out)
    phases: dict[tuple[int, ...], Tensor] = {}  # x[..., r::s] per residue r, copied once
    for i, delta in enumerate(geo.offsets):
        where = [divmod(d * a, s) for d, a, s in zip(geo.dilation, delta, geo.stride)]
        residue = tuple(r for _, r in where)
        if residue not in phases:
            steps = tuple(slice(r, None, s) for r, s in zip(residue, geo.stride))
            phases[residue] = x[(slice(None), slice(None), *steps)].contiguous()
        window = tuple(slice(q, q + o) for (q, _), o in zip(where, geo.out))
        out[:, i] = phases[residue][(slice(None), slice(None), *window)]
    return out.reshape(c, len(geo.offsets), -1)


def _in_buffer(x: Tensor, geo: _Geometry, size: list[int]) -> Tensor:
    """``x`` as ``(C, N, *size)`` zeros with each image at its padding offset (any input
    memory layout)."""
    buf = x.new_zeros(x.shape[1], x.shape[0], *size)
    real = tuple(slice(pl, pl + s) for (pl, _), s in zip(geo.padding, geo.size))
    buf[(slice(None), slice(None), *real)] = x.transpose(0, 1)
    return buf


def _add_gram(out: Tensor, rows: Tensor) -> None:
    """``out += rows @ rowsᵀ`` (batched), multiplying only the upper block triangle of
    the symmetric result: ~40% fewer FLOPs for the large factors."""
    d = rows.shape[1]
    parts = min(4, max(1, d // 256))
    edges = [d * i // parts for i in range(parts + 1)]
    for i in range(parts):
        top = slice(edges[i], edges[i + 1])
        for j in range(i, parts):
            side = slice(edges[j], edges[j + 1])
            block = rows[:, top] @ rows[:, side].transpose(1, 2)
            out[:, top, side] += block
            if j != i:
                out[:, side, top] += block.transpose(1, 2)


def _conv_blocks_lagged(x: Tensor, geo: _Geometry) -> tuple[Tensor, Tensor]:
    """Patch second moments of a stride-1, single-group convolution from lag
    correlations of the input (see the module docstring)."""
    c = x.shape[1]
    dims = len(geo.size)
    reach = [d * (k - 1) for d, k in zip(geo.dilation, geo.kernel)]
    # Buffer (C, N, *B): the image at offset pl, and at least `reach` zeros between the
    # images along every axis, so flat shifts never pair two real pixels wrongly.
    buf_size = [s + max(pl + pr, r) for s, (pl, pr), r in zip(geo.size, geo.padding, reach)]
    buf = _in_buffer(x, geo, buf_size)

    offsets = geo.offsets
    k = len(offsets)
    pairs = [(i, j, tuple(d * (b - a) for d, a, b in zip(geo.dilation, delta, offsets[j])))
             for i, delta in enumerate(offsets) for j in range(i, k)]
    cores = _lag_cores(buf, list(dict.fromkeys(lag for _, _, lag in pairs)))
    blocks = x.new_empty(c, k, c, k)
    memo: dict[tuple, Tensor] = {}
    for i, j, lag in pairs:
        block = cores[lag] - _outside_window(buf, geo, offsets[i], lag, memo)
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


def _lag_cores(buf: Tensor, lags: list[tuple[int, ...]],
               spectral: bool | None = None) -> dict[tuple[int, ...], Tensor]:
    """``Σ_u x[u] x[u+lag]ᵀ`` over the buffer's images for each lag: ``(C, C)`` each.

    Either one matrix product per lag over the flattened buffer, or, where the FLOP
    count says it is cheaper (``spectral=None``), from the images' cross-power spectra.
    """
    c = buf.shape[0]
    spatial = buf.shape[2:]
    area = math.prod(spatial)
    freqs = area // spatial[-1] * (spatial[-1] // 2 + 1)
    if spectral is None:
        transforms = 20 * c * area * math.log2(max(2, area))
        spectral = 8 * c * c * freqs + transforms < 2 * len(lags) * c * c * area
    if spectral:
        return _lag_cores_spectral(buf, lags)
    flat = buf.reshape(c, -1)
    strides = [math.prod(spatial[i + 1 :]) for i in range(len(spatial))]
    cores = {}
    for lag in lags:
        shift = sum(lg * st for lg, st in zip(lag, strides))
        cores[lag] = flat[:, : flat.shape[1] - shift] @ flat[:, shift:].T
    return cores


def _lag_cores_spectral(buf: Tensor, lags: list[tuple[int, ...]]
                        ) -> dict[tuple[int, ...], Tensor]:
    """The lag products from cross-power spectra: S(f) = Σ_n X̄_n(f) X_n(f)ᵀ is one
    small product per frequency (8·C²·N·F FLOPs instead of 2·C²·N·area per lag), and
    only the wanted lags of its inverse transform are evaluated. The zeros between
    images keep the circular correlation equal to the linear one at these lags."""
    c, n = buf.shape[:2]
    spatial = tuple(buf.shape[2:])
    half = spatial[-1] // 2 + 1
    freqs = math.prod(spatial[:-1]) * half
    chunk = max(1, _CHUNK_ELEMENTS // 2 // max(1, c * freqs))
    power = None  # Σ_n X_n X_nᴴ per frequency: the conjugate of S
    for start in range(0, n, chunk):
        spectra = torch.fft.rfftn(buf[:, start : start + chunk], dim=tuple(range(2, buf.ndim)))
        spectra = spectra.reshape(c, -1, freqs).permute(2, 0, 1).contiguous()
        part = torch.bmm(spectra, spectra.mH)
        power = part if power is None else power + part
    # corr(lag) = 1/|grid| Σ over all f of S(f)·e^{iθ}; the half spectrum counts twice
    # except where the last axis' frequency is its own mirror.
    axes = [torch.arange(s, dtype=torch.float64) for s in spatial[:-1]]
    grid = torch.meshgrid(*axes, torch.arange(half, dtype=torch.float64), indexing="ij")
    shifts = torch.tensor(lags, dtype=torch.float64)
    theta = sum(2 * math.pi * shifts[:, i, None] * g.reshape(1, -1) / size
                for i, (g, size) in enumerate(zip(grid, spatial)))
    last = grid[-1].reshape(-1)
    weight = (2.0 - ((last == 0) | (2 * last == spatial[-1])).double()) / math.prod(spatial)
    inverse = torch.cat([weight * theta.cos(), weight * theta.sin()])
    inverse = inverse.to(device=buf.device, dtype=buf.dtype)
    parts = inverse @ torch.view_as_real(power).reshape(freqs, -1)
    parts = parts.reshape(2, len(lags), c, c, 2)
    cores = parts[0, ..., 0] + parts[1, ..., 1]  # Re S·cos θ − Im S·sin θ, S = conj(power)
    return {lag: cores[i] for i, lag in enumerate(lags)}


def _outside_window(buf: Tensor, geo: _Geometry, delta, lag,
                    memo: dict[tuple, Tensor]) -> Tensor:
    """Σ x̃[u] x̃[u+lag]ᵀ over the real pixel pairs that lie outside offset δ's window.

    Per axis the pairs live in V = [pl+max(0,−lag), pl+S−max(0,lag)) and the window is
    W = [dδ, dδ+O). By inclusion–exclusion over the set S of axes on which u leaves W,
    the sum is Σ_S (−1)^{|S|+1} (u outside W on S, anywhere in V elsewhere). A term
    depends on δ only through the axes in S, so blocks share most terms: ``memo``
    keeps each slab product, keyed by its ranges and lag.
    """
    c = buf.shape[0]
    total = buf.new_zeros(c, c)
    valid: list[tuple[int, int]] = []
    outside: list[list[tuple[int, int]]] = []
    for (pl, _), s, d, a, o, lg in zip(
        geo.padding, geo.size, geo.dilation, delta, geo.out, lag
    ):
        lo, hi = pl + max(0, -lg), pl + s - max(0, lg)
        ilo = min(max(lo, d * a), hi)
        ihi = max(ilo, min(hi, d * a + o))
        valid.append((lo, hi))
        outside.append([part for part in ((lo, ilo), (ihi, hi)) if part[1] > part[0]])
    if any(hi <= lo for lo, hi in valid):
        return total
    for size in range(1, len(valid) + 1):
        for axes in itertools.combinations(range(len(valid)), size):
            for parts in itertools.product(*(outside[axis] for axis in axes)):
                ranges = list(valid)
                for axis, part in zip(axes, parts):
                    ranges[axis] = part
                key = (tuple(ranges), lag)
                if key not in memo:
                    here = tuple(slice(r0, r1) for r0, r1 in ranges)
                    there = tuple(slice(r0 + lg, r1 + lg) for (r0, r1), lg in zip(ranges, lag))
                    left = buf[(slice(None), slice(None), *here)].reshape(c, -1)
                    right = buf[(slice(None), slice(None), *there)].reshape(c, -1)
                    memo[key] = left @ right.T
                total += memo[key] if size % 2 else -memo[key]
    return total
