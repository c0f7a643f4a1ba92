"""What each unary operator costs a training step: one forward and backward pass over a
tensor of a convolutional layer's activations, one thread.

A table's build trains every function of a space; how long a function's training takes
depends on its operators far more than on anything else (torch's CPU kernels for some
transcendental functions are several times slower per number than tanh's). The default
shape is the first layer of ``allconv-fashion-mnist`` at its batch of 256 (8 channels of
28 x 28).

Run: ``.venv-dev/bin/python bench/actcore_operator_cost.py [--shape 256,8,28,28]
[--rounds 5]``, on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from actcore import core_operators, get_operator, to_module


def seconds(module: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor, rounds: int) -> float:
    """Median seconds of one forward and backward pass (after two untimed ones); a
    constant (zero, one) has no backward pass."""
    times = []
    for i in range(rounds + 2):
        x.grad = None
        start = time.perf_counter()
        y = module(x)
        if y.requires_grad:
            y.backward(grad)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="256,8,28,28")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    shape = tuple(int(n) for n in args.shape.split(","))
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0), requires_grad=True)
    grad = torch.ones_like(x)
    unary = [name for name in core_operators() if get_operator(name).arity == 1]
    costs = {name: seconds(to_module(f"{name}(x)"), x, grad, args.rounds) for name in unary}
    reference = costs["tanh"]
    print(f"torch {torch.__version__}, 1 thread, shape {shape} ({x.numel():,} numbers), "
          f"load average {os.getloadavg()[0]:.1f}; median of {args.rounds}")
    print("| operator | forward + backward (ms) | ns a number | × tanh |")
    print("|---|---:|---:|---:|")
    for name, cost in sorted(costs.items(), key=lambda item: item[1]):
        print(f"| {name} | {1e3 * cost:.1f} | {1e9 * cost / x.numel():.1f} "
              f"| {cost / reference:.1f} |")


if __name__ == "__main__":
    main()
