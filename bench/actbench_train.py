"""actbench training speed: seconds per mlp-digits run, and LeNet-5 harness overhead.

1. ``mlp-digits`` with ReLU, the task the benchmark tables train thousands of times:
   seconds per complete run (30 epochs + evaluation of all three splits). Target <= 2 s.
2. LeNet-5 on Fashion-MNIST-shaped data (synthetic, so no download is needed) with the
   hull paper's recipe (RMSprop, Keras time decay, flips and shifts, batch 32): images/s
   through ``actbench.train`` versus a plain hand-written PyTorch loop doing the same
   work in the same process, both with the channels-last layout the harness uses on a
   CPU (what that layout buys: ``bench/actbench_layout.py``). Target ratio >= 0.9.

Run: ``.venv-dev/bin/python bench/actbench_train.py [--runs 5]``. Both parts use one
torch thread (stable figures on a shared machine); the machine load is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

import actbench
from actbench import DataSource, Task, TensorData
from actbench.augment import flip_and_shift
from actbench.hookspecs import MODELS
from actbench.recipes import KERAS_RMSPROP
from actbench.train import layout
from actcore import hookimpl
from actcore.plugins import register, registry

N_TRAIN, N_EVAL = 4096, 512


def synthetic() -> dict[str, TensorData]:
    g = torch.Generator().manual_seed(0)
    data = {}
    for split, n in (("train", N_TRAIN), ("val", N_EVAL), ("test", N_EVAL)):
        x = torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
        data[split] = TensorData(x, torch.randint(0, 10, (n,), generator=g))
    return data


class SyntheticPlugin:
    def __init__(self, data: dict[str, TensorData]):
        self.data = data

    def load(self, split, root, download, augment):
        d = self.data[split]
        return TensorData(d.x, d.y, 3 if augment else None)

    @hookimpl
    def act_datasets(self):
        return [DataSource("synthetic-28", "random 28x28 images", (1, 28, 28), 10, self.load)]

    @hookimpl
    def act_tasks(self):
        return [Task("lenet5-synthetic", "synthetic-28", "lenet5", KERAS_RMSPROP)]


def plain_loop(data: dict[str, TensorData], epochs: int, seed: int) -> float:
    """LeNet-5 trained and evaluated by hand; returns seconds."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    model = registry(MODELS).get("lenet5").build(torch.nn.ReLU, (1, 28, 28), 10)
    model.to(memory_format=layout(torch.device("cpu")))  # as the harness lays it out
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-4, alpha=0.9, eps=1e-7)
    g = torch.Generator().manual_seed(seed)
    x, y = data["train"].x, data["train"].y
    step = 0
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), 32):
            idx = order[i : i + 32]
            xb = flip_and_shift(x[idx].float() / 255, 3, g)
            for group in opt.param_groups:
                group["lr"] = 1e-4 / (1 + 1e-6 * step)
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    model.eval()
    with torch.no_grad():
        for d in data.values():
            loss, correct = 0.0, 0
            for i in range(0, len(d), 1000):
                out, target = model(d.x[i : i + 1000].float() / 255), d.y[i : i + 1000]
                loss += F.cross_entropy(out, target, reduction="sum").item()
                correct += (out.argmax(1) == target).sum().item()
            assert 0 <= correct <= len(d) and loss > 0
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=1, help="LeNet-5 epochs per run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, load average {os.getloadavg()[0]:.1f}")

    actbench.train("mlp-digits", "relu", 0, epochs=1)  # warm up (imports, data)
    times = [actbench.train("mlp-digits", "relu", s).runtime_s for s in range(args.runs)]
    print(f"mlp-digits relu: {statistics.median(times):.2f} s per run (median of "
          f"{args.runs}; min {min(times):.2f}, max {max(times):.2f}) target <= 2 s")

    data = synthetic()
    register(SyntheticPlugin(data), "actbench-bench")
    images = N_TRAIN * args.epochs
    harness, plain = [], []
    for seed in range(args.runs):  # interleaved, so load changes hit both alike
        result = actbench.train("lenet5-synthetic", "relu", seed, epochs=args.epochs)
        harness.append(images / result.runtime_s)
        plain.append(images / plain_loop(data, args.epochs, seed))
    ratios = [h / p for h, p in zip(harness, plain)]
    print(f"LeNet-5 (28x28, batch 32, train {N_TRAIN} + eval {N_TRAIN + 2 * N_EVAL} images), "
          f"{args.runs} interleaved pairs:")
    print(f"  harness {statistics.median(harness):,.0f} img/s, plain loop "
          f"{statistics.median(plain):,.0f} img/s (medians)")
    print(f"  harness/plain ratio: median {statistics.median(ratios):.2f} "
          f"(min {min(ratios):.2f}, max {max(ratios):.2f}); target >= 0.9")


if __name__ == "__main__":
    main()
