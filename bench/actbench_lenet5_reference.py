"""An independent LeNet-5 on Fashion-MNIST with the hull paper's recipe, in plain PyTorch and
torchvision (none of act's data, model or training code), to check act's figures against.

RMSprop (lr 1e-4, rho 0.9, eps 1e-7) with Keras time decay 1e-6 per update, batch 32,
random horizontal flips and shifts of up to 3 pixels, pixels / 255; trained on 54,000 of
the 60,000 training images (a seeded 10% held out, as act does); prints the training loss
and the accuracy on the 6,000 held-out and the 10,000 test images after every epoch. The
official files are decompressed into a temporary folder for torchvision's reader.

Shifts are torchvision's ``RandomAffine`` by default (a uniform draw on [-3, 3] pixels,
rounded, so the extremes come half as often); ``--shifts crop`` draws whole pixels
uniformly from -3..3 with zero fill (``RandomCrop`` with padding 3), the distribution
act's own augmentation draws from, to tell a difference in shifts from one in act.

With ``--out FILE`` each epoch is also a JSON line in FILE, and the run keeps its state
(weights, optimiser, random generator) in ``FILE.pt`` after every epoch: the same command
resumes it bit for bit where it stopped.

Run: ``.venv-dev/bin/python bench/actbench_lenet5_reference.py [--epochs 6] [--seed 0]
[--shifts crop] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import datasets, transforms

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


SHIFTS = {
    "affine": lambda: transforms.RandomAffine(0, (3 / 28, 3 / 28)),
    "crop": lambda: transforms.RandomCrop(28, padding=3),
}


def fashion_mnist(folder: Path, train: bool, augment: bool, shifts: str = "affine"):
    raw = folder / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for gz in DEBIAN.glob("*.gz"):
        if not (raw / gz.stem).exists():
            with gzip.open(gz) as f, open(raw / gz.stem, "wb") as out:
                shutil.copyfileobj(f, out)
    steps = [transforms.RandomHorizontalFlip(), SHIFTS[shifts]()]
    tf = transforms.Compose([*(steps if augment else []), transforms.ToTensor()])
    return datasets.FashionMNIST(str(folder), train=train, transform=tf)


def lenet5() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(20, 50, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10),
    )  # fmt: skip


@torch.no_grad()
def accuracy(model: nn.Module, data) -> float:
    model.eval()
    loader = torch.utils.data.DataLoader(data, batch_size=1000)
    correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in loader)
    return correct / len(data)


def save_state(path: Path, epoch: int, model, optimizer, decay) -> None:
    """Everything the next epoch depends on, written atomically."""
    state = {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "decay": decay.state_dict(), "rng": torch.get_rng_state()}
    torch.save(state, path.with_name(path.name + ".tmp"))
    os.replace(path.with_name(path.name + ".tmp"), path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shifts", choices=sorted(SHIFTS), default="affine")
    parser.add_argument("--out", type=Path, help="JSON lines per epoch; state in OUT.pt")
    args = parser.parse_args(argv)
    text = args.out.read_text() if args.out is not None and args.out.exists() else ""
    if text.strip():
        made_with = json.loads(text.splitlines()[0]).get("shifts", "affine")
        if made_with != args.shifts:  # files from before --shifts used torchvision's
            parser.error(f"{args.out} was made with --shifts {made_with}, not {args.shifts}")
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        train = fashion_mnist(Path(tmp), True, augment=True, shifts=args.shifts)
        held_out = fashion_mnist(Path(tmp), True, augment=False)
        test = fashion_mnist(Path(tmp), False, augment=False)
        order = torch.randperm(60_000, generator=torch.Generator().manual_seed(0))
        val = torch.utils.data.Subset(held_out, order[:6_000].tolist())
        loader = torch.utils.data.DataLoader(torch.utils.data.Subset(train, order[6_000:].tolist()),
                                             batch_size=32, shuffle=True)
        model = lenet5()
        optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-4, alpha=0.9, eps=1e-7)
        decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1 / (1 + 1e-6 * t))
        state_path = args.out.with_name(args.out.name + ".pt") if args.out else None
        done = 0
        if state_path is not None and state_path.exists():
            state = torch.load(state_path, weights_only=True)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            decay.load_state_dict(state["decay"])
            torch.set_rng_state(state["rng"])
            done = state["epoch"]
            lines = args.out.read_text().splitlines(keepends=True)[:done]
            args.out.write_text("".join(lines))
        for epoch in range(done + 1, args.epochs + 1):
            start = time.perf_counter()
            model.train()
            total, count = 0.0, 0
            for x, y in loader:
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                decay.step()
                total, count = total + loss.item() * len(y), count + len(y)
            record = {"epoch": epoch, "seed": args.seed, "shifts": args.shifts,
                      "train_loss": total / count,
                      "val_accuracy": 100 * accuracy(model, val),
                      "test_accuracy": 100 * accuracy(model, test)}
            print(f"epoch {epoch}: loss {record['train_loss']:.4f}  validation "
                  f"{record['val_accuracy']:.2f}%  test {record['test_accuracy']:.2f}% "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
            if args.out is not None:
                with open(args.out, "a") as f:
                    f.write(json.dumps(record) + "\n")
                save_state(state_path, epoch, model, optimizer, decay)


if __name__ == "__main__":
    main()
