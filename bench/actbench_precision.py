"""What ``precision=bfloat16`` buys: training and evaluation images per second against
float32, on the real Fashion-MNIST tasks, one thread (how tables and grids train here).

Each round times one epoch of ``--images`` training images (the task's recipe: batch,
optimiser, augmentation) and then the validation split's evaluation, in float32 and in
bfloat16 back to back, so load changes hit both alike. Same seed, same images. The
bfloat16 run's last training loss is printed beside float32's: the two trainings differ
(8-bit products), and the loss shows by how much after one epoch.

Run on a quiet machine: ``.venv-dev/bin/python bench/actbench_precision.py [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

from actbench.activations import activation_factory
from actbench.train import Setup, evaluate_model, layout, prepare, warm_up

TASKS = ("lenet5-fashion-mnist", "kerasnet-fashion-mnist", "allconv-fashion-mnist")


def one_round(setup: Setup, activation: str) -> tuple[float, float, float]:
    """(training images/s, evaluation images/s, mean training loss) of one epoch in the
    setup's recipe (its precision among it)."""
    precision, images = setup.recipe.precision, len(setup.splits["train"])
    torch.manual_seed(0)
    shape, classes = setup.source.input_shape, setup.source.num_classes
    model = setup.architecture.build(activation_factory(activation), shape, classes)
    device = torch.device("cpu")
    model.to(memory_format=layout(device))  # as the harness lays it out
    warm_up(model, shape, device, precision)
    optimizer, schedule = setup.optimizer_and_schedule(model.parameters())
    generator = torch.Generator().manual_seed(0)
    model.train()
    start = time.perf_counter()
    loss = setup.train_epoch(lambda x, y: F.cross_entropy(model(x), y), optimizer, schedule,
                             generator, device).item()
    trained = time.perf_counter() - start
    val = setup.splits["val"]
    start = time.perf_counter()
    evaluate_model(model, val, setup.recipe.eval_batch_size, device, precision=precision)
    return images / trained, len(val) / (time.perf_counter() - start), loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=2048, help="training images a round")
    parser.add_argument("--activation", default="relu(x)")
    parser.add_argument("--task", action="append", choices=TASKS, help="default: all")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, {args.activation}, load average "
          f"{os.getloadavg()[0]:.1f}; medians of {args.rounds} rounds")
    print("| task | batch | float32 train img/s | bfloat16 | speed-up | float32 eval img/s "
          "| bfloat16 | speed-up | loss float32 / bfloat16 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for task in args.task or TASKS:
        setups = {p: prepare(task, None, False, {"train_images": args.images, "precision": p})
                  for p in ("float32", "bfloat16")}  # the data is read once a precision
        runs: dict[str, list[tuple[float, float, float]]] = {p: [] for p in setups}
        for _ in range(args.rounds):
            for precision, rounds in runs.items():
                rounds.append(one_round(setups[precision], args.activation))
        med = {p: [statistics.median(r[i] for r in rs) for i in range(3)]
               for p, rs in runs.items()}  # fmt: skip
        f32, b16 = med["float32"], med["bfloat16"]
        batch = setups["float32"].recipe.batch_size
        print(f"| {task} | {batch} | {f32[0]:,.0f} | {b16[0]:,.0f} | {b16[0] / f32[0]:.2f}x "
              f"| {f32[1]:,.0f} | {b16[1]:,.0f} | {b16[1] / f32[1]:.2f}x "
              f"| {f32[2]:.4f} / {b16[2]:.4f} |")


if __name__ == "__main__":
    main()
