"""The model zoo: architectures that take the activation function as a parameter.

Every builder receives an activation *factory* and calls it once per activation site, so
learnable activations get independent parameters in every layer. Layer sizes follow the
published descriptions; parameter counts are asserted in the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from actbench.activations import ActivationFactory, ActivationSpec, activation_factory
from actcore import ActError

Builder = Callable[[ActivationFactory, tuple[int, ...], int], nn.Module]


@dataclass(frozen=True)
class Model:
    """A registered architecture: ``build(activation, input_shape, num_classes)``."""

    name: str
    description: str
    builder: Builder

    def build(
        self, activation: ActivationSpec, input_shape: tuple[int, ...], num_classes: int
    ) -> nn.Module:
        """A fresh model; ``activation`` is an expression, operator name or factory."""
        if num_classes < 2:
            raise ActError(f"model {self.name!r}: num_classes must be >= 2, got {num_classes}")
        return self.builder(activation_factory(activation), tuple(input_shape), num_classes)


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _image_shape(name: str, input_shape: tuple[int, ...], min_size: int) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ActError(f"model {name!r} needs image input (C, H, W), got shape {input_shape}")
    c, h, w = input_shape
    if h < min_size or w < min_size:
        raise ActError(
            f"model {name!r} needs images of at least {min_size}x{min_size}, got {h}x{w}"
        )
    return c, h, w


def _out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1


# --- small models for digits (CPU scale) ------------------------------------------------

def dense_stack(depth: int, width: int) -> Builder:
    """A plain MLP of ``depth`` hidden layers of ``width`` units, each followed by the
    activation."""

    def build(act: ActivationFactory, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        features = 1
        for size in input_shape:
            features *= size
        layers: list[nn.Module] = [nn.Flatten()]
        for _ in range(depth):
            layers += [nn.Linear(features, width), act()]
            features = width
        layers.append(nn.Linear(features, num_classes))
        return nn.Sequential(*layers)

    return build


# 6 hidden layers of 64: deep enough that poor activations fail on digits.
mlp = dense_stack(6, 64)


def small_cnn(act: ActivationFactory, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """conv 16@3x3 → conv 32@3x3/2 → conv 32@3x3/2 → dense 64 → dense, for 8x8 digits."""
    c, h, w = _image_shape("cnn", input_shape, 4)
    h2, w2 = _out(_out(h, 3, 2, 1), 3, 2, 1), _out(_out(w, 3, 2, 1), 3, 2, 1)
    return nn.Sequential(
        nn.Conv2d(c, 16, 3, padding=1), act(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), act(),
        nn.Conv2d(32, 32, 3, stride=2, padding=1), act(),
        nn.Flatten(),
        nn.Linear(32 * h2 * w2, 64), act(),
        nn.Linear(64, num_classes),
    )  # fmt: skip


def all_conv_bn(act: ActivationFactory, input_shape: tuple[int, ...],
                num_classes: int) -> nn.Module:
    """All-CNN-C in spirit, sized for one CPU core: four 3x3 convolutions (8, 8, 16, 16
    maps; the second and fourth with stride 2 in place of pooling), each followed by
    BatchNorm and the activation, then one dense layer. Chosen by pilots for a
    convolutional benchmark table on Fashion-MNIST (packages/actbench/docs/
    allconv-fashion-mnist-pilots.md)."""
    c, h, w = _image_shape("allconv", input_shape, 8)
    h2, w2 = (_out(_out(size, 3, 2, 1), 3, 2, 1) for size in (h, w))
    return nn.Sequential(
        nn.Conv2d(c, 8, 3, padding=1), nn.BatchNorm2d(8), act(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), act(),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), act(),
        nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), act(),
        nn.Flatten(),
        nn.Linear(16 * h2 * w2, num_classes),
    )  # fmt: skip


# --- the hull paper's architectures ----------------------------------------------------


def lenet5(act: ActivationFactory, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """LeNet-5: conv 20@5x5, pool 2, conv 50@5x5, pool 2, dense 500, dense; no dropout."""
    c, h, w = _image_shape("lenet5", input_shape, 16)
    h2, w2 = (_out(size, 5) // 2 for size in (h, w))
    h3, w3 = _out(h2, 5) // 2, _out(w2, 5) // 2
    return nn.Sequential(
        nn.Conv2d(c, 20, 5), act(), nn.MaxPool2d(2),
        nn.Conv2d(20, 50, 5), act(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(50 * h3 * w3, 500), act(),
        nn.Linear(500, num_classes),
    )  # fmt: skip


def kerasnet(act: ActivationFactory, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The Keras CIFAR-10 example CNN (same/valid 3x3 convs, dropout .25/.25/.5)."""
    c, h, w = _image_shape("kerasnet", input_shape, 10)
    h2, w2 = (_out(_out(size, 3) // 2, 3) // 2 for size in (h, w))
    return nn.Sequential(
        nn.Conv2d(c, 32, 3, padding=1), act(),
        nn.Conv2d(32, 32, 3), act(), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Conv2d(32, 64, 3, padding=1), act(),
        nn.Conv2d(64, 64, 3), act(), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(64 * h2 * w2, 512), act(), nn.Dropout(0.5),
        nn.Linear(512, num_classes),
    )  # fmt: skip


def all_cnn_c(act: ActivationFactory, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """All-CNN-C (Springenberg et al. 2015): only convolutions, global average pooling."""
    c, _, _ = _image_shape("allcnnc", input_shape, 12)
    return nn.Sequential(
        nn.Dropout(0.2),
        nn.Conv2d(c, 96, 3, padding=1), act(),
        nn.Conv2d(96, 96, 3, padding=1), act(),
        nn.Conv2d(96, 96, 3, stride=2, padding=1), act(), nn.Dropout(0.5),
        nn.Conv2d(96, 192, 3, padding=1), act(),
        nn.Conv2d(192, 192, 3, padding=1), act(),
        nn.Conv2d(192, 192, 3, stride=2, padding=1), act(), nn.Dropout(0.5),
        nn.Conv2d(192, 192, 3), act(),
        nn.Conv2d(192, 192, 1), act(),
        nn.Conv2d(192, num_classes, 1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )  # fmt: skip


class ResidualBlock(nn.Module):
    """conv-BN-act-conv-BN plus shortcut, then act (ResNet v1, Keras-style biases)."""

    def __init__(self, act: ActivationFactory, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm2d(cout), act(),
            nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout),
        )  # fmt: skip
        # Where the shape changes, a 1x1 projection (as in the Keras ResNet v1 example).
        self.shortcut = (
            nn.Conv2d(cin, cout, 1, stride=stride) if stride != 1 or cin != cout else nn.Identity()
        )
        self.act = act()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + self.shortcut(x))


def resnet(depth: int) -> Builder:
    """CIFAR ResNet v1 of ``depth`` = 6n+2 layers (16/32/64 channels)."""

    def build(act: ActivationFactory, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        c, _, _ = _image_shape(f"resnet{depth}", input_shape, 8)
        blocks_per_stage = (depth - 2) // 6
        layers: list[nn.Module] = [nn.Conv2d(c, 16, 3, padding=1), nn.BatchNorm2d(16), act()]
        cin = 16
        for stage, cout in enumerate((16, 32, 64)):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(ResidualBlock(act, cin, cout, stride))
                cin = cout
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes)]
        return nn.Sequential(*layers)

    build.__doc__ = f"ResNet-{depth} for CIFAR-sized images (He et al. 2016, v1)."
    return build


def alexnet(act: ActivationFactory, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """AlexNet, Caffe variant (grouped convs, LRN, 227x227 crops): 61M parameters."""
    c, h, w = _image_shape("alexnet", input_shape, 67)  # the last pooling needs 3x3
    h2, w2 = (_out(_out(_out(_out(size, 11, 4), 3, 2), 3, 2), 3, 2) for size in (h, w))
    return nn.Sequential(
        nn.Conv2d(c, 96, 11, stride=4), act(), nn.LocalResponseNorm(5, 1e-4, 0.75),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2, groups=2), act(), nn.LocalResponseNorm(5, 1e-4, 0.75),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1), act(),
        nn.Conv2d(384, 384, 3, padding=1, groups=2), act(),
        nn.Conv2d(384, 256, 3, padding=1, groups=2), act(),
        nn.MaxPool2d(3, 2),
        nn.Flatten(),
        nn.Linear(256 * h2 * w2, 4096), act(), nn.Dropout(0.5),
        nn.Linear(4096, 4096), act(), nn.Dropout(0.5),
        nn.Linear(4096, num_classes),
    )  # fmt: skip


# --- published networks from torchvision and timm --------------------------------------


def published(source: str, kinds: tuple[str, ...]) -> Builder:
    """``source`` (``torchvision:NAME`` or ``timm:NAME``, built untrained) with the
    activation at every site of the ``kinds`` the network's authors chose; its other
    non-linearities (attention softmax, squeeze-excitation gates) stay."""

    def build(act: ActivationFactory, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        from actcore.model_source import build_model

        _image_shape(source, input_shape, 8)
        try:
            return build_model(source, act, input_shape, num_classes, replace=list(kinds))
        except ActError:
            raise
        except Exception as err:  # e.g. a window size that does not divide the input
            raise ActError(f"{source} cannot be built for input {input_shape}: "
                           f"{type(err).__name__}: {err}") from None

    build.__doc__ = f"{source}, its {'/'.join(kinds)} activations replaced."
    return build


def builtin_models() -> list[Model]:
    return [
        Model("mlp", "MLP, 6 hidden layers of 64 units (digits scale)", mlp),
        Model("mlp3", "MLP, 3 hidden layers of 128 units (Fashion-MNIST at CPU scale)",
              dense_stack(3, 128)),
        Model("cnn", "small 3-conv CNN for 8x8 images (digits scale)", small_cnn),
        Model("allconv", "4 conv + BatchNorm + dense, for 28x28 images (one CPU core)",
              all_conv_bn),
        Model("lenet5", "LeNet-5: 2 conv + 2 dense, no dropout", lenet5),
        Model("kerasnet", "Keras CIFAR-10 example CNN: 4 conv + 2 dense, dropout", kerasnet),
        Model("allcnnc", "All-CNN-C: 9 convolutions, global average pooling", all_cnn_c),
        Model("resnet56", "ResNet-56 v1 for CIFAR (858k parameters)", resnet(56)),
        Model("alexnet", "AlexNet, Caffe variant (61M parameters)", alexnet),
        Model("resnet50", "ResNet-50 (torchvision resnet50), its ReLUs replaced",
              published("torchvision:resnet50", ("relu",))),
        Model("mobilevitv2", "MobileViTv2-0.5 (timm mobilevitv2_050, needs timm), its SiLUs "
              "replaced", published("timm:mobilevitv2_050", ("silu",))),
        Model("coatnet", "CoAtNet-0 (timm coatnet_0_224, needs timm), its GELUs replaced",
              published("timm:coatnet_0_224", ("gelu",))),
    ]

