"""The tasks of the seeds' published experiments that need no timm: each builds, trains a
step on a tiny dataset written here in the official layout, and gives a valid Fisher
spectrum. (The timm-backed tasks run in the integration session, where timm is.)"""

from __future__ import annotations

import hashlib
import pickle
import sys

import numpy as np
import pytest
import torch
import torchvision.datasets

from actbench import train
from actbench.fisher import fisher_batch, model_factory
from actbench.testing import write_image_tree
from actcore import ActError, to_module
from actfim import kfac_spectrum

FAST = dict(epochs=1, train_images=8, batch_size=8, eval_batch_size=64, workers=0)


@pytest.fixture
def cifar100(tmp_path, monkeypatch):
    """CIFAR-100's python pickles (20 training, 10 test images), torchvision's checksums
    pointed at them so its integrity check runs for real."""
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in (("train", 20), ("test", 10)):
        entry = {"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
                 "fine_labels": [i % 100 for i in range(n)]}  # fmt: skip
        (folder / name).write_bytes(pickle.dumps(entry))
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"c{i}" for i in
                                                                     range(100)]}))

    def md5(name):
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    cls = torchvision.datasets.CIFAR100
    monkeypatch.setattr(cls, "train_list", [["train", md5("train")]])
    monkeypatch.setattr(cls, "test_list", [["test", md5("test")]])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5("meta")})
    return tmp_path


def _runs_and_has_a_valid_spectrum(task: str, dataset: str, root, classes: int) -> None:
    result = train(task, "relu", 0, root=root, **FAST)
    assert result.status == "ok", result.reason
    assert result.epochs == 1
    inputs, _ = fisher_batch(dataset, 2, 0, str(root))
    model = model_factory(task)(to_module("relu(x)"))
    spectrum = kfac_spectrum(model, inputs)
    assert spectrum.valid, spectrum.reason
    assert spectrum.layers[-1].g_size == classes  # the classifier, one row per class


@pytest.mark.parametrize("task", ["allcnnc-cifar100", "resnet56-cifar100"])
def test_cifar100_tasks(task, cifar100):
    _runs_and_has_a_valid_spectrum(task, "cifar100", cifar100, 100)


def test_resnet50_imagenet(tmp_path):
    """torchvision's ResNet-50 with act's activation at its 17 ReLU sites, on a
    1,000-class ImageFolder tree."""
    model = model_factory("resnet50-imagenet")(to_module("swish(x)"))
    sites = [m for _, m in model.named_modules(remove_duplicate=False)]
    assert sum(type(m).__name__ == "Activation" for m in sites) == 17
    write_image_tree(tmp_path, "imagenet", classes=1000, per_class=10, filled=2, size=8)
    _runs_and_has_a_valid_spectrum("resnet50-imagenet", "imagenet-224", tmp_path, 1000)


def test_a_timm_task_without_timm_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm fails
    with pytest.raises(ActError, match="timm models need the timm package"):
        model_factory("mobilevitv2-imagenette")(to_module("relu(x)"))
    with pytest.raises(ActError, match="timm models need the timm package"):
        model_factory("coatnet-imagenette")(to_module("relu(x)"))


def test_recipes_follow_their_sources():
    from actbench.tasks import get_task

    resnet50 = get_task("resnet50-imagenet").recipe
    assert (resnet50.optimizer, resnet50.lr, resnet50.batch_size, resnet50.epochs) == (
        "sgd", 0.1, 256, 90)
    assert resnet50.lr_factor(30 * 100, 100) == pytest.approx(0.1)  # / 10 every 30 epochs
    vit = get_task("mobilevitv2-imagenette").recipe
    assert vit.optimizer == "adamw" and vit.cosine
    steps = vit.epochs * 10
    assert vit.lr_factor(0, 10) == 1.0 and vit.lr_factor(steps // 2, 10) == pytest.approx(0.5)
    assert vit.lr_factor(steps, 10) == pytest.approx(0.0, abs=1e-12)
    opt = vit.optimizer_for([torch.nn.Parameter(torch.zeros(1))])
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["weight_decay"] == 0.05
