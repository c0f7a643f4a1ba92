"""What training in channels-last buys on a CPU: a training step and an evaluation pass of
each zoo CNN with its weights (and so its feature maps) contiguous, as PyTorch builds
them, against channels-last, as ``actbench.train`` lays them out on a CPU
(:func:`actbench.train.layout`). One thread, as tables and grids train here.

Each round times ``--steps`` training steps (RMSprop, batch ``--batch``) and then
evaluation forward passes of 1,000 images, contiguous and channels-last back to back, so
load changes hit both alike; medians over ``--rounds``. The two layouts compute the same
function: the largest difference of their outputs on one batch is printed (float32
rounding).

Run on a quiet machine (about 9 minutes, most of it All-CNN-C and ResNet-56):
``.venv-dev/bin/python bench/actbench_layout.py [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from actbench.hookspecs import MODELS
from actcore.plugins import registry

# (model, input shape): Fashion-MNIST's grey images for the models act trains on them,
# CIFAR's colour images for the papers' CIFAR networks
MODELS_AND_SHAPES = [
    ("lenet5", (1, 28, 28)), ("kerasnet", (1, 28, 28)), ("allconv", (1, 28, 28)),
    ("cnn", (1, 28, 28)), ("lenet5", (3, 32, 32)), ("kerasnet", (3, 32, 32)),
    ("allcnnc", (3, 32, 32)), ("resnet56", (3, 32, 32)),
]


def timers(model_name: str, shape: tuple[int, ...], activation: str, batch: int,
           memory_format: torch.memory_format
           ) -> tuple[Callable[[], None], Callable[[], None], torch.nn.Module]:
    """A training step and an evaluation pass of the model in ``memory_format``."""
    torch.manual_seed(0)
    model = registry(MODELS).get(model_name).build(activation, shape, 10)
    model.to(memory_format=memory_format)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(batch, *shape, generator=g), torch.randint(0, 10, (batch,), generator=g)
    evaluation = torch.rand(1000, *shape, generator=g)

    def step() -> None:
        model.train()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def evaluate() -> None:
        model.eval()
        model(evaluation)

    return step, evaluate, model


def seconds(call: Callable[[], None], times: int) -> float:
    start = time.perf_counter()
    for _ in range(times):
        call()
    return (time.perf_counter() - start) / times


def largest_difference(model: torch.nn.Module, shape: tuple[int, ...]) -> float:
    """The largest difference between the outputs of ``model`` and of a contiguous copy."""
    contiguous = copy.deepcopy(model).to(memory_format=torch.contiguous_format).eval()
    x = torch.rand(64, *shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        return (model.eval()(x) - contiguous(x)).abs().max().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20, help="training steps a round")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--activation", action="append",
                        help="default: relu(x) and affine_n(identity(x),relu(x),tanh(x))")
    args = parser.parse_args()
    torch.set_num_threads(1)
    activations = args.activation or ["relu(x)", "affine_n(identity(x),relu(x),tanh(x))"]
    print(f"torch {torch.__version__}, 1 thread, batch {args.batch}, load average "
          f"{os.getloadavg()[0]:.1f}; medians of {args.rounds} rounds")
    print("| model | input | activation | train step ms, contiguous | channels-last | "
          "speed-up | eval of 1,000 ms, contiguous | channels-last | speed-up | "
          "largest output difference |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for model_name, shape in MODELS_AND_SHAPES:
        for activation in activations:
            runs = {fmt: timers(model_name, shape, activation, args.batch, fmt)
                    for fmt in (torch.contiguous_format, torch.channels_last)}
            measured: dict[torch.memory_format, list[tuple[float, float]]] = {f: [] for f in runs}
            for step, evaluate, _ in runs.values():  # warm up
                seconds(step, 3)
                evaluate()
            for _ in range(args.rounds):
                for fmt, (step, evaluate, _) in runs.items():
                    measured[fmt].append((seconds(step, args.steps), seconds(evaluate, 1)))
            (c_step, c_eval), (l_step, l_eval) = (
                [1e3 * statistics.median(m[i] for m in measured[fmt]) for i in (0, 1)]
                for fmt in runs)
            difference = largest_difference(runs[torch.channels_last][2], shape)
            print(f"| {model_name} | {'x'.join(map(str, shape))} | {activation} | "
                  f"{c_step:.1f} | {l_step:.1f} | {c_step / l_step:.2f}x | {c_eval:.0f} | "
                  f"{l_eval:.0f} | {c_eval / l_eval:.2f}x | {difference:.1e} |", flush=True)


if __name__ == "__main__":
    main()
