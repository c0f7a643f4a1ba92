"""K-FAC factors A and G against direct computations written out here."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from actfim import kfac_factors, patches
from actfim.patches import conv_input_moment


def direct_conv_a(x, conv):
    """A per group from an explicit F.unfold of the zero-padded input."""
    if conv.padding_mode != "zeros":
        x = F.pad(x, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
        pad = [0, 0] * len(conv.kernel_size)
    elif conv.padding == "same":
        pad = []
        for k, d in reversed(list(zip(conv.kernel_size, conv.dilation))):
            total = d * (k - 1)
            pad += [total // 2, total - total // 2]
    elif conv.padding == "valid":
        pad = [0, 0] * len(conv.kernel_size)
    else:
        pad = [p for p in reversed(conv.padding) for _ in range(2)]
    x = F.pad(x, pad)
    if x.ndim == 3:  # Conv1d as a 1×k 2-d convolution
        x = x[:, :, None]
        kernel, dilation, stride = (1, *conv.kernel_size), (1, *conv.dilation), (1, *conv.stride)
    else:
        kernel, dilation, stride = conv.kernel_size, conv.dilation, conv.stride
    patches = F.unfold(x, kernel, dilation=dilation, stride=stride)  # (N, C·K, T)
    n, ck, t = patches.shape
    rows = patches.permute(0, 2, 1).reshape(n * t, ck)
    if conv.bias is not None:
        rows = torch.cat([rows.reshape(n * t, conv.groups, -1),
                          torch.ones(n * t, conv.groups, 1, dtype=x.dtype)], dim=2)
    rows = rows.reshape(n * t, conv.groups, -1).transpose(0, 1)
    return rows.transpose(1, 2) @ rows / (n * t)


CONVS = {
    "plain 3x3 pad 1": lambda: nn.Conv2d(3, 5, 3, padding=1),
    "stride 2": lambda: nn.Conv2d(3, 5, 3, stride=2, padding=1),
    "padding same": lambda: nn.Conv2d(3, 5, (3, 4), padding="same"),
    "dilation 2": lambda: nn.Conv2d(3, 5, 3, dilation=2, padding=2),
    "dilation 2 same": lambda: nn.Conv2d(3, 5, 3, dilation=2, padding="same"),
    "depthwise": lambda: nn.Conv2d(4, 4, 3, padding=1, groups=4),
    "groups 2 stride 2": lambda: nn.Conv2d(4, 6, 3, stride=2, groups=2),
    "no bias valid": lambda: nn.Conv2d(3, 5, 3, bias=False),
    "reflect padding": lambda: nn.Conv2d(3, 5, 3, padding=1, padding_mode="reflect"),
    "1x1": lambda: nn.Conv2d(3, 5, 1),
    "stride (2, 1) dilation (1, 2)": lambda: nn.Conv2d(3, 5, 3, stride=(2, 1), dilation=(1, 2),
                                                    padding=(1, 2)),
    "stride 3 kernel 2": lambda: nn.Conv2d(3, 5, 2, stride=3, padding=1),
    "conv1d stride 2 dilation 2": lambda: nn.Conv1d(3, 5, 3, stride=2, dilation=2, padding=3),
    "conv1d same": lambda: nn.Conv1d(3, 5, 4, padding="same"),
    "conv1d depthwise": lambda: nn.Conv1d(3, 3, 3, groups=3),
}


# even kernels with padding="same" are tested on purpose; torch warns that it pads a copy
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize("name", CONVS)
def test_conv_input_factor_matches_unfold(name):
    torch.manual_seed(0)
    conv = CONVS[name]().double()
    spatial = (11,) if isinstance(conv, nn.Conv1d) else (9, 8)
    shape = (3, conv.in_channels, *spatial)
    x = torch.randn(shape, dtype=torch.float64)
    moment, count = conv_input_moment(x, conv)
    assert torch.allclose(moment / count, direct_conv_a(x, conv), atol=1e-12, rtol=1e-10)
    assert count * conv.out_channels == conv(x).numel()  # N·T locations


@pytest.mark.parametrize("spectral", [True, False])
@pytest.mark.parametrize("name", [n for n in CONVS if "stride" not in n and "groups" not in n
                                  and "depthwise" not in n])
def test_stride_one_factor_both_ways(name, spectral, monkeypatch):
    """The lag path's two ways to the lag products (one product per lag, or the
    cross-power spectrum), each forced, give the unfolded A (odd and even sizes)."""
    forced = patches._lag_cores
    monkeypatch.setattr(patches, "_lag_cores",
                        lambda buf, lags: forced(buf, lags, spectral=spectral))
    torch.manual_seed(4)
    conv = CONVS[name]().double()
    for spatial in [(12,), (7,)] if isinstance(conv, nn.Conv1d) else [(9, 8), (6, 7)]:
        x = torch.randn(4, conv.in_channels, *spatial, dtype=torch.float64)
        moment, count = conv_input_moment(x, conv)
        assert torch.allclose(moment / count, direct_conv_a(x, conv), atol=1e-12, rtol=1e-10)


def test_lag_products_spectral_equals_flat():
    torch.manual_seed(5)
    for shape in [(3, 2, 7, 9), (3, 2, 8, 6), (4, 3, 11)]:
        buf = torch.randn(*shape, dtype=torch.float64)
        # zeros between images at the far end, as the lag path lays them out
        buf[..., -2:] = 0
        if buf.ndim == 4:
            buf[..., -2:, :] = 0
        lags = [(0, 0), (0, 2), (1, -2), (2, 1)] if buf.ndim == 4 else [(0,), (1,), (2,)]
        flat = patches._lag_cores(buf, lags, spectral=False)
        spectral = patches._lag_cores(buf, lags, spectral=True)
        for lag in lags:
            assert torch.allclose(spectral[lag], flat[lag], atol=1e-12), (shape, lag)


@pytest.mark.parametrize("name", ["stride 2", "padding same", "dilation 2", "depthwise"])
def test_conv_factors_a_and_g_in_a_model(name):
    """Both factors of a conv inside a model, G from autograd on an explicit loss."""
    torch.manual_seed(1)
    conv = CONVS[name]().double()
    head = nn.Linear(conv.out_channels, 4).double()
    model = nn.Sequential(conv, nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)
    x = torch.randn(5, conv.in_channels, 9, 8, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 1])
    factors, skipped, _ = kfac_factors(model, x, y, fisher="empirical", dtype=torch.float64)
    assert skipped == [] and [f.name for f in factors] == ["0", "4"]
    a = direct_conv_a(x, conv)
    assert torch.allclose(factors[0].a, a, atol=1e-12)
    out = conv(x)
    grad, = torch.autograd.grad(
        F.cross_entropy(model[1:](out), y, reduction="sum"), out)
    g = grad.transpose(0, 1).reshape(conv.groups, conv.out_channels // conv.groups, -1)
    assert torch.allclose(factors[0].g, g @ g.transpose(1, 2) / len(x), atol=1e-12)
    assert factors[0].num_weights == sum(p.numel() for p in conv.parameters())


def test_linear_factors_with_sequence_dimension():
    torch.manual_seed(2)
    layer = nn.Linear(4, 3).double()
    model = nn.Sequential(layer, nn.Flatten(), nn.Linear(15, 2).double())
    x = torch.randn(6, 5, 4, dtype=torch.float64)
    y = torch.randint(0, 2, (6,))
    factors, _, _ = kfac_factors(model, x, y, fisher="empirical", dtype=torch.float64)
    rows = torch.cat([x.reshape(-1, 4), torch.ones(30, 1, dtype=torch.float64)], 1)
    assert torch.allclose(factors[0].a[0], rows.T @ rows / 30)
    out = layer(x)
    grad, = torch.autograd.grad(F.cross_entropy(model[1:](out), y, reduction="sum"), out)
    g = grad.reshape(-1, 3)
    assert torch.allclose(factors[0].g[0], g.T @ g / 6)


def test_inplace_activation_does_not_corrupt_g():
    torch.manual_seed(3)
    plain = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    inplace = nn.Sequential(nn.Linear(4, 8), nn.ReLU(inplace=True), nn.Linear(8, 3))
    inplace.load_state_dict(plain.state_dict())
    x = torch.randn(7, 4)
    y = torch.randint(0, 3, (7,))
    a, _, _ = kfac_factors(plain, x, y, fisher="empirical")
    b, _, _ = kfac_factors(inplace, x, y, fisher="empirical")
    assert len(a) == 2
    for fa, fb in zip(a, b, strict=True):
        assert torch.allclose(fa.a, fb.a) and torch.allclose(fa.g, fb.g)


def test_weight_gradients_are_not_computed_and_frozen_layers_work():
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    model[0].requires_grad_(False)
    factors, _, _ = kfac_factors(model, torch.randn(5, 4))
    assert len(factors) == 2
    assert all(p.grad is None for p in model.parameters())
    assert not model[0].weight.requires_grad


def test_skipped_layers_and_residual_structure():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)
            self.norm = nn.BatchNorm2d(4)

        def forward(self, x):
            return x + torch.relu(self.norm(self.conv(x)))  # functional code between modules

    model = nn.Sequential(nn.Conv2d(2, 4, 1), Block(), nn.Flatten(), nn.Linear(4 * 36, 3))
    factors, skipped, _ = kfac_factors(model, torch.randn(3, 2, 6, 6))
    assert [f.name for f in factors] == ["0", "1.conv", "3"]
    assert [str(s) for s in skipped] == ["1.norm (BatchNorm2d, 8 parameters)"]


class _ViewNet(nn.Module):
    """A model whose own forward flattens with ``.view`` (refused by channels-last)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        h = torch.tanh(self.conv(x))
        return self.head(h.view(h.shape[0], -1))


def test_channels_last_only_where_safe_and_same_factors(monkeypatch):
    """Image batches run channels-last through PyTorch/act modules (faster convolutions),
    with the same factors; a model with its own forward keeps the default layout."""
    from actfim import factors as factors_module

    torch.manual_seed(6)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(),
                          nn.Conv2d(4, 5, 3, stride=2), nn.Flatten(),
                          nn.LazyLinear(3)).double()
    x = torch.randn(5, 3, 8, 8, dtype=torch.float64)
    model(x)
    assert factors_module._channels_last_safe(model, x)
    assert not factors_module._channels_last_safe(model, x.flatten(2))
    fast, _, out_fast = kfac_factors(model, x, dtype=torch.float64)
    monkeypatch.setattr(factors_module, "_channels_last_safe", lambda model, inputs: False)
    plain, _, out_plain = kfac_factors(model, x, dtype=torch.float64)
    assert torch.allclose(out_fast, out_plain, atol=1e-12)
    for a, b in zip(fast, plain, strict=True):
        assert torch.allclose(a.a, b.a, atol=1e-12) and torch.allclose(a.g, b.g, atol=1e-12)

    monkeypatch.undo()
    custom = _ViewNet().double()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    assert not factors_module._channels_last_safe(custom, x)
    layers, _, _ = kfac_factors(custom, x, dtype=torch.float64)
    assert [f.name for f in layers] == ["conv", "head"]
