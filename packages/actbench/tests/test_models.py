"""The zoo's architectures: parameter counts from the papers, fresh activation per site."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from actbench import parameter_count
from actbench.hookspecs import MODELS
from actcore import ActError, ParseError
from actcore.plugins import registry

FASHION = ((1, 28, 28), 10)
CIFAR10 = ((3, 32, 32), 10)


def build(name: str, shape_classes, activation="relu") -> nn.Module:
    shape, classes = shape_classes
    return registry(MODELS).get(name).build(activation, shape, classes)


def conv(cin: int, cout: int, k: int, groups: int = 1) -> int:
    return cin // groups * k * k * cout + cout


def dense(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


@pytest.mark.parametrize(
    ("name", "data", "expected", "rounded"),
    [
        # LeNet-5: 28 -5-> 24 -pool-> 12 -5-> 8 -pool-> 4 (32: 28, 14, 10, 5)
        ("lenet5", FASHION, conv(1, 20, 5) + conv(20, 50, 5) + dense(50 * 4 * 4, 500)
         + dense(500, 10), 431_000),
        ("lenet5", CIFAR10, conv(3, 20, 5) + conv(20, 50, 5) + dense(50 * 5 * 5, 500)
         + dense(500, 10), 657_000),
        # KerasNet: same, valid, pool, same, valid, pool: 28 -> 26 -> 13 -> 11 -> 5
        ("kerasnet", FASHION, conv(1, 32, 3) + conv(32, 32, 3) + conv(32, 64, 3)
         + conv(64, 64, 3) + dense(64 * 5 * 5, 512) + dense(512, 10), 890_000),
        ("kerasnet", CIFAR10, conv(3, 32, 3) + conv(32, 32, 3) + conv(32, 64, 3)
         + conv(64, 64, 3) + dense(64 * 6 * 6, 512) + dense(512, 10), 1_251_000),
    ],
)  # fmt: skip
def test_hull_paper_parameter_counts(name, data, expected, rounded):
    count = parameter_count(build(name, data))
    assert count == expected
    assert round(count, -3) == rounded  # SPEC.md's rounded figures (431k, 657k, 890k, 1.2M)


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [("mlp", ((1, 8, 8), 10), dense(64, 64) + 5 * dense(64, 64) + dense(64, 10)),
     ("mlp3", FASHION, dense(784, 128) + 2 * dense(128, 128) + dense(128, 10))],
)  # fmt: skip
def test_mlps_have_their_stated_layers(name, data, expected):
    model = build(name, data)
    assert parameter_count(model) == expected
    widths = [m.out_features for m in model.modules() if isinstance(m, nn.Linear)]
    assert widths == ([64] * 6 if name == "mlp" else [128] * 3) + [10]


def test_resnet56_has_858k_parameters_on_cifar10():
    # 55 convs with biases, BN (2 per channel), two 1x1 projections, dense 64->10.
    convs = conv(3, 16, 3) + 18 * conv(16, 16, 3) + conv(16, 32, 3) + 17 * conv(32, 32, 3)
    convs += conv(32, 64, 3) + 17 * conv(64, 64, 3) + conv(16, 32, 1) + conv(32, 64, 1)
    bn = 2 * (16 + 18 * 16 + 18 * 32 + 18 * 64)
    count = parameter_count(build("resnet56", CIFAR10))
    assert count == convs + bn + dense(64, 10) == 857_706
    convs_in_model = [m for m in build("resnet56", CIFAR10).modules() if isinstance(m, nn.Conv2d)]
    assert len(convs_in_model) == 55 + 2


def test_alexnet_caffe_variant_has_61m_parameters():
    count = parameter_count(build("alexnet", ((3, 227, 227), 1000)))
    expected = (conv(3, 96, 11) + conv(96, 256, 5, groups=2) + conv(256, 384, 3)
                + conv(384, 384, 3, groups=2) + conv(384, 256, 3, groups=2)
                + dense(256 * 6 * 6, 4096) + dense(4096, 4096) + dense(4096, 1000))  # fmt: skip
    assert count == expected == 60_965_224


def test_all_cnn_c_weights_per_layer_match_spec():
    model = build("allcnnc", CIFAR10)
    layers = [(m.weight.numel(), m.bias.numel()) for m in model.modules()
              if isinstance(m, nn.Conv2d)]  # fmt: skip
    assert layers == [
        (2592, 96), (82944, 96), (82944, 96), (165888, 192), (331776, 192),
        (331776, 192), (331776, 192), (36864, 192), (1920, 10),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "data"),
    [("lenet5", FASHION), ("lenet5", CIFAR10), ("kerasnet", CIFAR10), ("allcnnc", CIFAR10),
     ("resnet56", CIFAR10), ("mlp", ((1, 8, 8), 10)), ("cnn", ((1, 8, 8), 10)),
     ("mlp", ((5,), 3)), ("mlp3", FASHION), ("allconv", FASHION)],
)  # fmt: skip
def test_models_map_a_batch_to_class_logits(name, data):
    shape, classes = data
    model = build(name, data).eval()
    with torch.no_grad():
        assert model(torch.randn(2, *shape)).shape == (2, classes)


def test_every_activation_site_gets_its_own_module():
    made: list[nn.Module] = []

    def factory() -> nn.Module:
        made.append(nn.PReLU())
        return made[-1]

    model = build("lenet5", CIFAR10, factory)
    assert len(made) == 3  # two convs, one hidden dense layer
    assert len({id(m) for m in made}) == 3
    prelus = [m for m in model.modules() if isinstance(m, nn.PReLU)]
    assert [id(m) for m in prelus] == [id(m) for m in made]
    # independent parameters: changing one layer's slope leaves the others alone
    with torch.no_grad():
        prelus[0].weight.fill_(0.5)
    assert prelus[1].weight.item() == pytest.approx(0.25)
    mlp_sites = [m for m in build("mlp", ((1, 8, 8), 10), "tanh(x)").modules()
                 if type(m).__name__ == "Activation"]  # fmt: skip
    assert len(mlp_sites) == 6 and len({id(m) for m in mlp_sites}) == 6


def test_operator_name_means_the_operator_applied_to_x():
    torch.manual_seed(0)
    a = build("mlp", ((4,), 3), "tanh")
    torch.manual_seed(0)
    b = build("mlp", ((4,), 3), "tanh(x)")
    x = torch.randn(5, 4)
    assert torch.equal(a(x), b(x))
    assert "tanh(x)" in repr(a)


def test_bad_activations_and_shapes_are_clear_errors():
    with pytest.raises(ParseError):
        build("mlp", FASHION, "tanh(x")
    with pytest.raises(ActError, match="unknown operator"):
        build("mlp", FASHION, "tanhh(x)")
    with pytest.raises(ActError, match=r"not a torch\.nn\.Module"):
        build("mlp", FASHION, lambda: 3)
    with pytest.raises(ActError, match="image input"):
        build("lenet5", ((64,), 10))
    with pytest.raises(ActError, match="at least"):
        build("alexnet", CIFAR10)
