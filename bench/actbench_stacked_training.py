"""Functions trained per hour: stacked (:func:`actbench.train_many`) against one at a
time (:func:`actbench.train`), in the same run, one process of one torch thread.

For each case it trains the same functions alone and in stacks of K, with the task's full
recipe, and prints functions per hour both ways, their ratio,
and the median and largest validation-accuracy gaps between a function's two runs:
float32 rounding differs between a batched and a single matrix product, and some of the
table's functions amplify it as much as running on another CPU does. The functions are
drawn (seeded) from the shipped digits table's classes: the ones a table build trains.

Cases: ``mlp-digits`` (target >= 4x), ``mlp-digits-hulls`` (the hull paper's twelve
activations, a ``bench compare`` grid), ``mlp3-fashion-mnist`` (an MLP on Fashion-MNIST,
target >= 3x), and convolutional ones, where the automatic stack size is 1 (target: never
below 1x), with a forced stack beside it to show why.

With ``--ceiling`` it also splits one training step, per function, into what stacking
shares and what it cannot: a solo step; a stacked step; the stack's step with no
activations at all (the matrix products, loss and optimiser every member needs); and the
activations' own arithmetic (each member's forward and backward at its real sizes, less
the same calls on 8 values: what is left if a call cost nothing). Stacking cannot make a
step cheaper than the last two together, so ``alone / (shared + arithmetic)`` is the
most it can gain on these functions, however the calls are batched.

Run on a quiet machine: ``.venv-dev/bin/python bench/actbench_stacked_training.py
[--cases mlp-digits,...] [--ceiling]``.
"""

from __future__ import annotations

import argparse
import os
import random
import time

import torch
import torch.nn.functional as F
from torch import nn

from actbench import load_table, train
from actbench.activations import activation_factory
from actbench.stacked_training import (
    _member_losses,
    build_with_sites,
    members_per_stack,
    train_many,
)
from actbench.stacking import MemberActivations, StackedModel, _direct
from actbench.train import Setup, batches, prepare

# case: task, stack (None: automatic), functions stacked, functions alone, overrides
CASES = {
    "mlp-digits": ("mlp-digits", 32, 64, 64, {}),
    "mlp-digits-hulls": ("mlp-digits", 12, 12, 12, {}),
    "mlp3-fashion-mnist": ("mlp3-fashion-mnist", 32, 32, 32, {}),
    "cnn-digits": ("cnn-digits", None, 8, 8, {"epochs": 5}),
    "cnn-digits-forced": ("cnn-digits", 8, 8, 8, {"epochs": 5}),
    "lenet5-forced": ("lenet5-fashion-mnist", 4, 4, 4, {"epochs": 1, "train_images": 3000}),
}


# the hull paper's twelve (needs acthull): a bench compare grid
HULLS = ["identity(x)", "relu(x)", "tanh(x)", "leakyrelu(x)"] + [
    f"{kind}({bases})" for kind in ("convex_n", "affine_n")
    for bases in ("identity(x),relu(x)", "identity(x),tanh(x)", "relu(x),tanh(x)",
                  "identity(x),relu(x),tanh(x)")
]  # fmt: skip


def functions(case: str, count: int, seed: int = 0) -> list[str]:
    if case.endswith("-hulls"):
        return HULLS[:count]
    names = sorted(load_table("act-bench-digits-mlp").names())
    return random.Random(seed).sample(names, count)


def per_hour(seconds: float, count: int) -> float:
    return 3600 * count / seconds


def run_case(name: str) -> int:
    """Train the case's functions alone and stacked, print both rates; the stack size."""
    task, stack, stacked_count, solo_count, overrides = CASES[name]
    chosen = functions(name, stacked_count)
    size = members_per_stack(task, "cpu", stack)
    train(task, "relu", 0, **{**overrides, "epochs": 1})  # data loaded, kernels warm
    start = time.perf_counter()
    alone = [train(task, f, 0, **overrides) for f in chosen[:solo_count]]
    solo_s = time.perf_counter() - start
    start = time.perf_counter()
    together = train_many(task, chosen, 0, stack=size, **overrides)
    stacked_s = time.perf_counter() - start
    gaps = sorted(abs(a.val_accuracy - b.val_accuracy) for a, b in zip(alone, together))
    ok = sum(r.status == "ok" for r in together)
    solo_rate, stacked_rate = per_hour(solo_s, solo_count), per_hour(stacked_s, stacked_count)
    print(f"{name:<18} stack {size:>2}: alone {solo_rate:7.0f}/h ({solo_count} in "
          f"{solo_s:5.1f} s), stacked {stacked_rate:7.0f}/h ({stacked_count} in "
          f"{stacked_s:5.1f} s, {ok} ok): {stacked_rate / solo_rate:4.2f}x; val accuracy gap "
          f"median {100 * gaps[len(gaps) // 2]:.2f}, largest {100 * gaps[-1]:.2f} points")
    return size


def build(setup: Setup, activation: str) -> tuple[nn.Module, list[str]]:
    """The task's model with ``activation`` (seed 0) and the names of its activation sites."""
    return build_with_sites(setup, activation_factory(activation, setup.recipe.normalize), 0)


def step_ms(model: nn.Module, loss, x: torch.Tensor, y: torch.Tensor, setup: Setup,
            steps: int = 20) -> float:
    """The mean of ``steps`` training steps after 3 warm-up steps, in ms."""
    optimizer = setup.recipe.optimizer_for(model.parameters())

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss(model(x), y).backward()
        optimizer.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return 1000 * (time.perf_counter() - start) / steps


def arithmetic_ms(call, inputs: list[torch.Tensor], repeats: int = 20) -> float:
    """One activation's forward and backward at every site, less the same on 8 values."""
    def run(tensors: list[torch.Tensor]) -> float:
        leaves = [t.detach().requires_grad_() for t in tensors]
        start = time.perf_counter()
        for _ in range(repeats):
            for leaf in leaves:
                call(leaf).sum().backward()
        return (time.perf_counter() - start) / repeats

    run(inputs)
    return 1000 * max(run(inputs) - run([t.flatten()[:8] for t in inputs]), 0.0)


def site_inputs(model: nn.Module, sites: list[str], x: torch.Tensor) -> list[torch.Tensor]:
    """What each activation site of ``model`` receives on the batch ``x``."""
    captured: list[torch.Tensor] = []
    hooks = [model.get_submodule(site).register_forward_hook(
        lambda module, args, out: captured.append(args[0].detach())) for site in sites]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return captured


def ceiling(task: str, chosen: list[str], k: int) -> None:
    """Print one training step per function: alone, stacked, what the stack shares, the
    activations' arithmetic, and the gain no batching of calls can beat."""
    setup = prepare(task, None, False, {})
    x, y = next(batches(setup.splits["train"], setup.recipe.batch_size,
                        torch.Generator().manual_seed(0), 0))  # fmt: skip
    alone, inputs, calls = [], [], []
    for activation in chosen[:k]:
        model, sites = build(setup, activation)
        inputs.append(site_inputs(model, sites, x))
        calls.append(_direct(model.get_submodule(sites[0])))
        alone.append(step_ms(model, F.cross_entropy, x, y, setup))
    members = [build(setup, activation) for activation in chosen[:k]]
    stack = StackedModel([m for m, _ in members], members[0][1])

    def summed(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _member_losses(logits, target).sum()

    stacked = step_ms(stack, summed, x, y, setup) / k
    for name, module in list(stack.body.named_modules()):
        if isinstance(module, MemberActivations):
            stack.body.set_submodule(name, nn.Identity())
    shared = step_ms(stack, summed, x, y, setup) / k
    arithmetic = sum(arithmetic_ms(c, i) for c, i in zip(calls, inputs)) / k
    solo = sum(alone) / k
    print(f"{'':<18} one step per function: alone {solo:.3f} ms, stacked {stacked:.3f} ms "
          f"({solo / stacked:.2f}x); shared part {shared:.3f} ms + activation arithmetic "
          f"{arithmetic:.3f} ms: at most {solo / (shared + arithmetic):.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated cases")
    parser.add_argument("--ceiling", action="store_true",
                        help="also split a step into what stacking shares and what it cannot")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()[0]:.2f} (quiet: < 0.3); torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, one thread")
    for name in args.cases.split(","):
        size = run_case(name)
        if args.ceiling and size > 1:
            ceiling(CASES[name][0], functions(name, CASES[name][2]), size)


if __name__ == "__main__":
    main()
