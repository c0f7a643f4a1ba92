"""What a hull activation costs in the hull paper's networks: one training step (forward,
backward, RMSprop update; batch 32, 28x28x1 as Fashion-MNIST) of LeNet-5 and KerasNet with
each of the eight hulls, against ReLU, in the same run. Target: at most 1.2x ReLU's step.

First it prints each activation's cost per call, forward and backward on 8 values: the
part of a step that is not arithmetic, paid once per activation layer.

The networks are laid out as act's training lays them out on a CPU (channels-last,
:func:`actbench.train.layout`); ``--contiguous`` keeps PyTorch's default layout instead.
Rounds are interleaved (every activation once per round), so a change in machine load
hits all of them alike; the figure is the median step time over rounds. Run on a quiet
machine: ``.venv-dev/bin/python bench/acthull_hull_cost.py [--rounds 7] [--steps 30]
[--kernel eager|compiled|autograd] [--granularity channel] [--contiguous]`` (default
``fused``: the native kernel where it builds, whose first use compiles it; the warm-up
steps take that; ``channel``: one coefficient vector per channel instead of per layer).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

from actbench.hookspecs import MODELS
from actbench.recipes import KERAS_RMSPROP
from actbench.train import layout
from actcore import to_module
from actcore.plugins import registry
from acthull import replace_activations
from acthull.hull import KERNELS

SETS = ["identity(x),relu(x)", "identity(x),tanh(x)", "relu(x),tanh(x)",
        "identity(x),relu(x),tanh(x)"]
ACTIVATIONS = ["relu(x)", "tanh(x)", *(f"{kind}({bases})" for kind in ("convex_n", "affine_n")
                            for bases in SETS)]


def hull_spec(activation: str, kernel: str, granularity: str = "layer"):
    """``activation`` as a HullSpec with the given kernel (None: not a hull)."""
    if "_n(" not in activation:
        return None
    from acthull.hull import HullSpec

    kind, bases = activation.split("_n(", 1)
    return HullSpec(kind=kind, bases=bases[:-1].replace("(x)", "").split(","), kernel=kernel,
                    granularity=granularity)  # fmt: skip


def build(model_name: str, activation: str, kernel: str, granularity: str):
    """The model with ``activation`` at every site; per-channel hulls replace its ReLUs
    (they need each site's channel count, which only a forward pass shows)."""
    torch.manual_seed(0)
    spec = hull_spec(activation, kernel, granularity)
    model = registry(MODELS).get(model_name)
    if spec is None or granularity == "layer":
        return model.build(activation if spec is None else spec.build, (1, 28, 28), 10)
    built = model.build("relu(x)", (1, 28, 28), 10)
    replace_activations(built, spec, example_input=torch.zeros(1, 1, 28, 28))
    return built


def stepper(model_name: str, activation: str, batch: int, kernel: str, granularity: str,
            memory_format: torch.memory_format):
    """A function running ``steps`` training steps of the model; returns seconds."""
    model = build(model_name, activation, kernel, granularity).to(memory_format=memory_format)
    optimizer = KERAS_RMSPROP.optimizer_for(model.parameters())
    x, y = torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    model.train()

    def run(steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return (time.perf_counter() - start) / steps

    return run


def per_call_us(activation: str, kernel: str, calls: int = 200, repeats: int = 5) -> float:
    """Forward and backward of one activation module on 8 values, in µs (the fastest of
    ``repeats`` runs of ``calls``): what a call costs besides its arithmetic (Python,
    dispatch, autograd)."""
    spec = hull_spec(activation, kernel)
    module = to_module(activation) if spec is None else spec.build()
    x = torch.randn(8, requires_grad=True)

    def run() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            module(x).sum().backward()
        return (time.perf_counter() - start) / calls

    run()  # warm-up
    return 1e6 * min(run() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=30, help="steps per timing")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--kernel", choices=KERNELS, default="fused",
                        help="the hulls' kernel (fused: native where it builds; eager: torch ops)")
    parser.add_argument("--granularity", choices=["layer", "channel"], default="layer",
                        help="hull coefficients per layer (the paper's) or per channel")
    parser.add_argument("--contiguous", action="store_true",
                        help="PyTorch's default layout, not the one act trains in")
    args = parser.parse_args()
    memory_format = torch.contiguous_format if args.contiguous else layout(torch.device("cpu"))
    print(f"load average {os.getloadavg()[0]:.2f} (quiet: < 0.3); torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, batch {args.batch}, {args.kernel} kernel, "
          f"coefficients per {args.granularity}, {str(memory_format).split('.')[-1]}")
    print("\nper call, forward and backward on 8 values:")
    for activation in ACTIVATIONS:
        print(f"  {activation:<40} {per_call_us(activation, args.kernel):7.1f} µs")
    for model_name in ("lenet5", "kerasnet"):
        runs = {a: stepper(model_name, a, args.batch, args.kernel, args.granularity,
                           memory_format) for a in ACTIVATIONS}
        for run in runs.values():
            run(3)  # warm-up
        times: dict[str, list[float]] = {a: [] for a in ACTIVATIONS}
        for _ in range(args.rounds):
            for activation, run in runs.items():
                times[activation].append(run(args.steps))
        relu = statistics.median(times["relu(x)"])
        print(f"\n{model_name}: median ms per training step over {args.rounds} rounds")
        for activation in ACTIVATIONS:
            t = statistics.median(times[activation])
            mark = "" if t <= 1.2 * relu else "  (over 1.2x)"
            print(f"  {activation:<40} {1000 * t:7.2f} ms  {t / relu:5.2f}x{mark}")


if __name__ == "__main__":
    main()
