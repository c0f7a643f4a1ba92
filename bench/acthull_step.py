"""One training step (forward + backward) of LeNet-5 on 28x28x1, batch 128, on this CPU.

Compares, in the same run: plain ReLU; acthull's convex hull over {id, ReLU, tanh} with
its default memory-lean ``fused`` kernel (the native loops), with ``eager`` (the same
recomputation in torch ops), with the ``compiled`` kernel (torch.compile'd fused loops;
compile time excluded, done in warm-up) and with plain ``autograd``; and a
naive "stacked" hull (torch.stack of the N base outputs, weighted sum over them).

Prints median step time over interleaved rounds and the bytes saved for backward
(unique storages packed by autograd, parameters excluded), each as a ratio to ReLU. The
networks are laid out as act trains them on a CPU (channels-last,
:func:`actbench.train.layout`).

    .venv-dev/bin/python bench/acthull_step.py [--rounds 15] [--batch 128] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from actbench.train import layout
from acthull import ConvexHull

BASES = ["identity", "relu", "tanh"]


class StackedHull(nn.Module):
    """The naive implementation: materialise all N base outputs, then mix them."""

    def __init__(self, bases: list[Callable[[Tensor], Tensor]]):
        super().__init__()
        self.fns = bases
        self.raw = nn.Parameter(torch.zeros(len(bases)))

    def forward(self, x: Tensor) -> Tensor:
        stacked = torch.stack([f(x) for f in self.fns])
        c = torch.softmax(self.raw, 0).view(-1, *([1] * x.dim()))
        return (stacked * c).sum(0)


def lenet5(act: Callable[[], nn.Module]) -> nn.Sequential:
    """The hull paper's LeNet-5 for 28x28x1 (431k parameters)."""
    return nn.Sequential(
        nn.Conv2d(1, 20, 5), act(), nn.MaxPool2d(2),
        nn.Conv2d(20, 50, 5), act(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(50 * 4 * 4, 500), act(), nn.Linear(500, 10),
    )


VARIANTS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "hull (fused)": lambda: ConvexHull(BASES),
    "hull (eager)": lambda: ConvexHull(BASES, kernel="eager"),
    "hull (compiled)": lambda: ConvexHull(BASES, kernel="compiled"),
    "hull (autograd)": lambda: ConvexHull(BASES, kernel="autograd"),
    "naive stacked": lambda: StackedHull([lambda x: x, torch.relu, torch.tanh]),
}


def step(model: nn.Module, x: Tensor, y: Tensor) -> None:
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()


def saved_bytes(model: nn.Module, x: Tensor, y: Tensor) -> tuple[int, int]:
    """Bytes of the distinct storages autograd saves for backward, parameters excluded:
    by the whole model, and by its activation layers alone."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    whole: dict[int, int] = {}
    in_activations: dict[int, int] = {}
    inside = []

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            whole[storage.data_ptr()] = storage.nbytes()
            if inside:
                in_activations[storage.data_ptr()] = storage.nbytes()
        return t

    activations = [m for m in model if not isinstance(m, nn.Conv2d | nn.Linear | nn.MaxPool2d
                                                          | nn.Flatten)]

    def enter(*_: object) -> None:
        inside.append(True)

    def leave(*_: object) -> None:
        inside.pop()

    handles = [m.register_forward_pre_hook(enter) for m in activations]
    handles += [m.register_forward_hook(leave) for m in activations]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    for handle in handles:
        handle.remove()
    return sum(whole.values()), sum(in_activations.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 1, 28, 28)
    y = torch.randint(0, 10, (args.batch,))
    cpu = layout(torch.device("cpu"))
    models = {name: lenet5(act).to(memory_format=cpu) for name, act in VARIANTS.items()}
    for model in models.values():  # warm up
        for _ in range(3):
            step(model, x, y)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):  # interleaved, so machine load hits every variant alike
        for name, model in models.items():
            start = time.perf_counter()
            step(model, x, y)
            times[name].append(time.perf_counter() - start)
    memory = {name: saved_bytes(model, x, y) for name, model in models.items()}
    base_t = statistics.median(times["relu"])
    base_best = min(times["relu"])
    base_model, base_act = memory["relu"]
    print(f"LeNet-5 28x28x1, batch {args.batch}, {torch.get_num_threads()} threads, "
          f"{args.rounds} interleaved rounds, hull bases {{{', '.join(BASES)}}}")
    print("saved = MiB autograd keeps for backward (parameters excluded): whole model, and "
          "inside the activation layers")
    print("step ms = median (and best) over the rounds")
    print(f"{'variant':<16} {'step ms':>9} {'ratio':>6} {'best':>7} {'ratio':>6} {'saved':>7} "
          f"{'ratio':>6} {'act':>6} {'ratio':>6}")
    for name in models:
        t, best = statistics.median(times[name]), min(times[name])
        whole, act = memory[name]
        print(f"{name:<16} {t * 1e3:9.2f} {t / base_t:6.2f} {best * 1e3:7.2f} "
              f"{best / base_best:6.2f} {whole / 2**20:7.2f} {whole / base_model:6.2f} "
              f"{act / 2**20:6.2f} {act / base_act:6.2f}")


if __name__ == "__main__":
    main()
