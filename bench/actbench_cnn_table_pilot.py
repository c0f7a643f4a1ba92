"""Pilots for a convolutional benchmark table on Fashion-MNIST: which all-convolutional
network, training subset and recipe give ReLU a seed-to-seed standard deviation of
validation accuracy of at most 0.2 points, in a training short enough for 2,791 classes
times 3 seeds on two one-thread workers in about six hours (about 5 s a training).

For each candidate (width, training images, epochs) it trains ReLU with ``--seeds``
seeds, one thread, curves off, and prints the validation accuracy's mean, standard
deviation and range, and the seconds per training (wall and CPU). Time it on a quiet
machine (pause any background run first).

Run: ``.venv-dev/bin/python bench/actbench_cnn_table_pilot.py [--seeds 10] [--jobs 2]``.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

from torch import nn


def all_conv(width: int, head: str):
    """All-CNN-C in spirit, for 28x28 grey images: 3x3 convolutions, two with stride 2 in
    place of pooling; then ``head``: ``gap`` (a 1x1 convolution to the classes and global
    average pooling, as All-CNN-C) or ``dense`` (one linear layer on the 7x7 maps);
    ``bn``: the dense head with BatchNorm after each convolution (as ResNet-56 has)."""

    def build(act, input_shape, num_classes):
        c = input_shape[0]
        w, w2 = width, 2 * width
        norm = (lambda n: [nn.BatchNorm2d(n)]) if head == "bn" else (lambda n: [])
        body = [
            nn.Conv2d(c, w, 3, padding=1), *norm(w), act(),
            nn.Conv2d(w, w, 3, stride=2, padding=1), *norm(w), act(),
            nn.Conv2d(w, w2, 3, padding=1), *norm(w2), act(),
            nn.Conv2d(w2, w2, 3, stride=2, padding=1), *norm(w2), act(),
        ]  # fmt: skip
        if head in ("dense", "bn"):
            return nn.Sequential(*body, nn.Flatten(), nn.Linear(w2 * 7 * 7, num_classes))
        return nn.Sequential(*body, nn.Conv2d(w2, w2, 3), act(), nn.Conv2d(w2, num_classes, 1),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten())

    return build


def run(width: int, images: int, epochs: int, seed: int, head: str = "dense",
        lr: float = 2e-3, batch: int = 128) -> tuple[float, float, float]:
    from actbench import Recipe, Task, train
    from actbench.models import Model
    from actcore import hookimpl, plugins

    class Pilot:
        @hookimpl
        def act_models(self):
            return [Model(f"pilot-{h}{w}", "pilot", all_conv(w, h)) for w in range(4, 65, 4)
                    for h in ("gap", "dense", "bn")]  # fmt: skip

    if "pilot" not in plugins.plugin_names():  # once per worker process
        plugins.register(Pilot(), name="pilot")
    recipe = Recipe(optimizer="adam", lr=lr, epochs=epochs, batch_size=batch, cosine=True,
                    train_images=images, threads=1, curves=False)
    task = Task("pilot", "fashion-mnist", f"pilot-{head}{width}", recipe)
    wall, cpu = time.perf_counter(), time.process_time()
    result = train(task, "relu", seed)
    return result.val_accuracy, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--images", type=int, nargs="+", default=[12000])
    parser.add_argument("--epochs", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--heads", nargs="+", default=["dense"], choices=["dense", "gap", "bn"])
    parser.add_argument("--lrs", type=float, nargs="+", default=[2e-3])
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    print(f"batch {args.batch}, {args.seeds} seeds")
    print("head  width images epochs     lr  val mean   std  (min-max)      wall s  cpu s")
    for head, width, images, epochs, lr in itertools.product(args.heads, args.widths,
                                                              args.images, args.epochs, args.lrs):
        with ProcessPoolExecutor(args.jobs) as pool:
            runs = list(pool.map(run, *zip(*[(width, images, epochs, s, head, lr, args.batch)
                                             for s in range(args.seeds)])))
        val = [100 * v for v, _, _ in runs]
        print(f"{head:5s} {width:5d} {images:6d} {epochs:6d} {lr:6.0e}  "
              f"{statistics.fmean(val):8.2f} "
              f"{statistics.stdev(val):5.2f}  ({min(val):.2f}-{max(val):.2f})  "
              f"{statistics.median(w for _, w, _ in runs):6.1f} "
              f"{statistics.median(c for _, _, c in runs):6.1f}", flush=True)


if __name__ == "__main__":
    main()
