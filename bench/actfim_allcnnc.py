"""actfim on All-CNN-C at initialisation: seconds per activation function, peak memory,
achieved GFLOP/s beside a plain matmul, and the straightforward approach for comparison.

    .venv-dev/bin/python bench/actfim_allcnnc.py [--batch 128] [--functions relu(x) tanh(x)]
        [--device cpu|cuda] [--no-baseline]

The straightforward approach: forward/backward hooks, explicit ``F.unfold`` patch
matrices, A = PᵀP and G = gᵀg in float64 numpy, ``np.linalg.eigh`` of each factor.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import actfim
from actcore import to_module

# (out channels, kernel, stride) of All-CNN-C; 3×3 convs use padding 1.
LAYERS = [(96, 3, 1), (96, 3, 1), (96, 3, 2), (192, 3, 1), (192, 3, 1), (192, 3, 2),
          (192, 3, 1), (192, 1, 1), (10, 1, 1)]


def all_cnn_c(activation: str, channels: int = 3) -> nn.Module:
    layers: list[nn.Module] = []
    for i, (out, k, s) in enumerate(LAYERS):
        layers.append(nn.Conv2d(channels, out, k, stride=s, padding=k // 2))
        if i < len(LAYERS) - 1:
            layers.append(to_module(activation))
        channels = out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())


def flop_counts(batch: int) -> tuple[float, float, float]:
    """FLOPs of forward+backward (input grads only), of the unfold-based factor products
    (A = PᵀP, G = gᵀg), and of the eigendecompositions (≈ 9n³, as for LAPACK syevd)."""
    size, channels, passes, products, eig = 32, 3, 0.0, 0.0, 0.0
    for out, k, s in LAYERS:
        size_out = size // s
        t = size_out * size_out
        d_in = channels * k * k
        passes += 2 * 2 * batch * t * d_in * out  # forward + input gradient
        products += 2 * batch * t * ((d_in + 1) ** 2 + out**2)
        eig += 9 * ((d_in + 1) ** 3 + out**3)
        size, channels = size_out, out
    return passes, products, eig


def matmul_gflops(n: int = 2048, k: int = 16384) -> float:
    a, b = torch.randn(n, k), torch.randn(k, n)
    a @ b
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n * n * k / best / 1e9


def straightforward(model: nn.Module, x: torch.Tensor, seed: int = 0) -> list[np.ndarray]:
    """Unfold + float64 numpy K-FAC spectra (MC Fisher, one sample)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    inputs, grads = {}, {}
    hooks = [c.register_forward_hook(lambda m, a, o: inputs.__setitem__(m, a[0].detach()))
             for c in convs]
    hooks += [c.register_full_backward_hook(
        lambda m, gi, go: grads.__setitem__(m, go[0].detach())) for c in convs]
    logits = model(x)
    probs = torch.softmax(logits.detach().double(), 1)  # the same draw as actfim's
    y = torch.multinomial(probs, 1, replacement=True,
                          generator=torch.Generator().manual_seed(seed))[:, 0]
    F.cross_entropy(logits, y, reduction="sum").backward()
    for h in hooks:
        h.remove()
    spectra = []
    n = len(x)
    for conv in convs:
        patches = F.unfold(inputs[conv], conv.kernel_size, dilation=conv.dilation,
                           padding=conv.padding, stride=conv.stride)
        p = patches.transpose(1, 2).reshape(-1, patches.shape[1]).double().numpy()
        p = np.concatenate([p, np.ones((len(p), 1))], axis=1)
        a = p.T @ p / len(p)
        g = grads[conv].transpose(0, 1).reshape(conv.out_channels, -1).double().numpy()
        gg = g @ g.T / n
        la, lg = np.linalg.eigh(a)[0], np.linalg.eigh(gg)[0]
        floor = 32 * np.finfo(np.float64).eps
        la = np.log(np.maximum(la, la.max() * floor))
        lg = np.log(np.maximum(lg, lg.max() * floor))
        spectra.append((la[:, None] + lg[None, :]).ravel())
    model.zero_grad(set_to_none=True)
    return spectra


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--functions", nargs="+", default=["relu(x)", "tanh(x)", "swish(x)"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32, device=device)
    passes, products, eig = flop_counts(args.batch)
    print(f"All-CNN-C, batch {args.batch}, MC Fisher (1 sample), device {device}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    print(f"work of the straightforward method: forward+backward {passes / 1e9:.0f} GFLOP, "
          f"factor products {products / 1e9:.0f} GFLOP, eigh ~{eig / 1e9:.0f} GFLOP")
    gflops_mm = matmul_gflops()
    print(f"plain float32 matmul (2048x16384 @ 16384x2048): {gflops_mm:.0f} GFLOP/s")

    # Warm up once (first calls load kernels), then time each function.
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = all_cnn_c("relu(x)").to(device)
    actfim.kfac_spectrum(model, x)
    times = []
    for expr in args.functions:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = all_cnn_c(expr).to(device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        spectrum = actfim.kfac_spectrum(model, x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        times.append(elapsed)
        clamped = sum(layer.clamped_a + layer.clamped_g for layer in spectrum.layers)
        print(f"  actfim {expr:<10} {elapsed:6.2f} s  valid={spectrum.valid}  "
              f"{sum(spectrum.num_weights):,} eigenvalues, {clamped} clamped")
    best = min(times)
    total = passes + products + eig
    print(f"actfim: {np.median(times):.2f} s/function (best {best:.2f}); "
          f"effective {total / best / 1e9:.0f} GFLOP/s of straightforward-equivalent work "
          f"= {total / best / 1e9 / gflops_mm:.0%} of plain matmul")
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    print(f"peak resident memory so far (process): {peak_rss_gib():.2f} GiB; "
          f"load average now {os.getloadavg()[0]:.1f}")

    if args.no_baseline or device.type != "cpu":
        return
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = all_cnn_c(args.functions[0])
    start = time.perf_counter()
    reference = straightforward(model, x)
    base = time.perf_counter() - start
    print(f"straightforward (unfold + float64 numpy eigh), {args.functions[0]}: {base:.2f} s, "
          f"{total / base / 1e9:.0f} GFLOP/s; peak resident memory "
          f"{peak_rss_gib():.2f} GiB")
    print(f"speed-up of actfim over the straightforward approach: {base / best:.1f}x")
    ours = actfim.kfac_spectrum(model, x, dtype=torch.float64)
    worst = 0.0
    for layer, ref in zip(ours.layers, reference):
        a, b = np.sort(layer.log_eigenvalues.numpy()), np.sort(ref)
        keep = b > b.max() - 15
        worst = max(worst, float(np.abs(a[keep] - b[keep]).max()))
    print(f"check: actfim (float64) vs straightforward log-eigenvalues within e^15 of the "
          f"top agree to {worst:.1e}")


if __name__ == "__main__":
    main()
