import copy
import pickle
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from actcore import ActError, ParseError
from acthull import AffineHull, ConvexHull, HullSpec

BASES = ["identity", "relu", "tanh"]
# table derivatives, autograd-derived ones (nested, exp), and a constant base
MIXED = ["identity", "relu", "tanh", "sigmoid", "swish", "elu(tanh(x))", "exp", "zero"]


@pytest.mark.parametrize("cls", [ConvexHull, AffineHull])
@pytest.mark.parametrize("channels", [None, 3])
def test_initialised_uniformly(cls, channels):
    hull = cls(BASES, channels=channels)
    c = hull.coefficients()
    assert torch.allclose(c, torch.full_like(c, 1 / 3))


@pytest.mark.parametrize("channels", [None, 5])
def test_any_raw_value_is_on_the_hull(channels):
    torch.manual_seed(0)
    convex, affine = ConvexHull(BASES, channels=channels), AffineHull(BASES, channels=channels)
    for scale in (1e-3, 1.0, 30.0, 1e4):
        with torch.no_grad():
            convex.raw.normal_(0, scale)
            affine.raw.normal_(0, scale)
        c = convex.coefficients()
        assert (c >= 0).all()
        assert torch.allclose(c.sum(0), torch.ones(()), atol=1e-6)
        a = affine.coefficients()
        error = (a.sum(0) - 1).abs()
        assert (error <= 1e-6 * (1 + a.abs().sum(0))).all()


def _reference(x, c, fns):
    """Independent float64 computation of Σ c_i f_i(x) (c: (N,) or (N, C) on dim 1)."""
    x = x.double()
    c = c.double()
    if c.dim() == 2:
        c = c.reshape(c.shape[0], 1, -1, *([1] * (x.dim() - 2)))
    return sum(c[i] * f(x) for i, f in enumerate(fns))


def test_forward_matches_independent_formula():
    torch.manual_seed(0)
    fns = [lambda x: x, torch.relu, torch.tanh, torch.sigmoid, F.silu,
           lambda x: F.elu(torch.tanh(x)), torch.exp, torch.zeros_like]
    x = torch.randn(4, 3, 5, 5, dtype=torch.float64)
    for channels in (None, 3):
        hull = AffineHull(MIXED, channels=channels).double()
        with torch.no_grad():
            hull.raw.normal_()
        expected = _reference(x, hull.coefficients(), fns)
        torch.testing.assert_close(hull(x), expected)


@pytest.mark.parametrize("cls", [ConvexHull, AffineHull])
@pytest.mark.parametrize(
    ("shape", "channels", "dim"), [((4, 3), None, 1), ((2, 3, 2, 2), 3, 1), ((3,), 3, -1)]
)
def test_gradcheck_float64(cls, shape, channels, dim):
    torch.manual_seed(0)
    hull = cls(MIXED, channels=channels, channel_dim=dim).double()
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    raw = torch.randn_like(hull.raw, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, r: functional_call(hull, {"raw": r}, (x,)), (x, raw))


def test_fused_and_autograd_paths_agree():
    torch.manual_seed(0)
    fused = ConvexHull(MIXED, channels=4)
    plain = copy.deepcopy(fused)
    plain.kernel = "autograd"
    with torch.no_grad():
        fused.raw.normal_()
        plain.raw.copy_(fused.raw)
    x = torch.randn(8, 4, 3, 3, requires_grad=True)
    y1, y2 = fused(x), plain(x)
    assert y1.grad_fn.name().startswith("WeightedSum")
    assert not y2.grad_fn.name().startswith("WeightedSum")
    assert torch.equal(y1, y2)
    g1 = torch.autograd.grad(y1.square().sum(), (x, fused.raw))
    g2 = torch.autograd.grad(y2.square().sum(), (x, plain.raw))
    torch.testing.assert_close(g1, g2)


def _saved_shapes(module, x):
    """Shapes of the input-sized (or larger) tensors autograd saves for backward."""
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        module(x)
    return [t.shape for t in saved if t.numel() >= x.numel()]


def test_fused_saves_one_input_sized_tensor():
    x = torch.randn(64, 16, requires_grad=True)
    bases = ["identity", "relu", "tanh", "swish", "elu"]
    assert _saved_shapes(ConvexHull(bases), x) == [x.shape]
    assert len(_saved_shapes(ConvexHull(bases, kernel="autograd"), x)) >= len(bases)


@pytest.mark.parametrize("cls", [ConvexHull, AffineHull])
def test_proposition_1_identity_at_zero(cls):
    """Bases with f(0)=0, f'(0)=1 give g(0)=0, g'(0)=1 for arbitrary coefficients."""
    torch.manual_seed(0)
    hull = cls(["identity", "tanh"], channels=6).double()
    with torch.no_grad():
        hull.raw.normal_(0, 3)
    if cls is AffineHull:  # include coefficients outside [0, 1]
        assert (hull.coefficients() < 0).any()
    x = torch.zeros(1, 6, dtype=torch.float64, requires_grad=True)
    y = hull(x)
    (slope,) = torch.autograd.grad(y.sum(), x)
    assert torch.equal(y, torch.zeros_like(y))
    torch.testing.assert_close(slope, torch.ones_like(slope))


def test_convex_identity_relu_is_leaky_relu():
    torch.manual_seed(0)
    hull = ConvexHull(["identity", "relu"])
    x = torch.randn(1000) * 4
    for raw in ([0.0, 0.0], [-2.0, 1.0], [1.5, -0.5]):
        with torch.no_grad():
            hull.raw.copy_(torch.tensor(raw))
        p = hull.coefficients()[0].item()
        torch.testing.assert_close(hull(x), F.leaky_relu(x, negative_slope=p))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("channels", [None, 3])
def test_dtypes(dtype, channels):
    torch.manual_seed(0)
    hull = AffineHull(BASES, channels=channels).to(dtype)
    with torch.no_grad():
        hull.raw.normal_()
    x = torch.randn(5, 3, 4, dtype=dtype, requires_grad=True)
    y = hull(x)
    assert y.dtype == dtype
    y.sum().backward()
    assert x.grad.dtype == dtype and hull.raw.grad.dtype == dtype
    ref = copy.deepcopy(hull).double()
    ref.raw.grad = None
    xr = x.detach().double().requires_grad_()
    ref(xr).sum().backward()
    tol = {torch.bfloat16: 5e-2, torch.float32: 1e-5, torch.float64: 1e-12}[dtype]
    torch.testing.assert_close(y.double(), ref(xr).detach(), atol=tol, rtol=tol)
    torch.testing.assert_close(x.grad.double(), xr.grad, atol=tol, rtol=tol)
    if dtype != torch.bfloat16:
        # coefficient gradients sum over 60 elements: relative tolerance
        torch.testing.assert_close(hull.raw.grad.double(), ref.raw.grad, atol=tol * 20,
                                   rtol=tol)
        return
    # bfloat16 keeps 8 significant bits, and each of the summed terms is at most |x| in size
    # (id, ReLU and tanh are, and the coefficients' map has slopes of at most 1): against a
    # float32 run of the same numbers the sum is off by a few units of 2^-8 · Σ|x|, far below
    # what a wrong sign would cost (measured 0.03 and 0.05; the gradients reach 12)
    ref32 = copy.deepcopy(hull).float()
    ref32.raw.grad = None
    ref32(x.detach().float()).sum().backward()
    bound = 2 * 2.0**-8 * x.detach().double().abs().sum()
    assert (hull.raw.grad.double() - ref32.raw.grad.double()).abs().max() < bound
    assert (hull.raw.grad.double() + ref32.raw.grad.double()).abs().max() > 2 * bound


def test_nested_learnable_bases_train_through_autograd():
    inner = ConvexHull(["identity", "relu"])
    outer = AffineHull([inner, "tanh"])
    x = torch.randn(10, requires_grad=True)
    y = outer(x)
    assert not y.grad_fn.name().startswith("WeightedSum")
    y.square().sum().backward()
    assert inner.raw.grad is not None and inner.raw.grad.abs().sum() > 0
    assert outer.raw.grad is not None

    inner.raw.requires_grad_(False)  # frozen: a fixed base, so the fused kernel applies
    y = outer(x)
    assert y.grad_fn.name().startswith("WeightedSum")


def test_state_dict_deepcopy_pickle_round_trip():
    torch.manual_seed(0)
    hull = AffineHull(["identity", "relu", "elu(tanh(x))"], channels=2)
    with torch.no_grad():
        hull.raw.normal_()
    x = torch.randn(3, 2)
    other = AffineHull(["identity", "relu", "elu(tanh(x))"], channels=2)
    other.load_state_dict(hull.state_dict())
    assert torch.equal(other(x), hull(x))
    for clone in (copy.deepcopy(hull), pickle.loads(pickle.dumps(hull))):
        assert torch.equal(clone(x), hull(x))
        assert clone.raw is not hull.raw
        assert str(clone) == "affine_n(identity(x),relu(x),elu(tanh(x)))"


def test_spec_and_names():
    spec = HullSpec(kind="affine", bases=["identity", "relu", "swish(x)"])
    hull = spec.build()
    assert isinstance(hull, AffineHull)
    assert spec.expression == hull.expression == "affine_n(identity(x),relu(x),swish(x))"
    assert hull.spec.bases == ["identity(x)", "relu(x)", "swish(x)"]
    per_channel = HullSpec(bases=["relu"], granularity="channel").build(channels=7)
    assert per_channel.raw.shape == (1, 7)


def test_bad_input_is_an_act_error():
    with pytest.raises(ActError, match="at least one base"):
        ConvexHull([])
    with pytest.raises(ParseError, match="did you mean 'relu'"):
        ConvexHull(["identity", "rleu"])
    with pytest.raises(ParseError, match="wrong arity"):
        ConvexHull(["add"])
    with pytest.raises(ActError, match="positive integer"):
        ConvexHull(BASES, channels=0)
    hull = ConvexHull(BASES, channels=4)
    with pytest.raises(ActError, match="has 4 channels but the input"):
        hull(torch.randn(2, 3))
    with pytest.raises(ActError, match="floating-point input"):
        ConvexHull(BASES)(torch.arange(3))
    with pytest.raises(ActError, match="needs the number of channels"):
        HullSpec(bases=["relu"], granularity="channel").build()


def _skip_if_the_compiler_cannot_build_here(err: Exception) -> None:
    """Inductor's C++ does not build on every CPU (``ATEN_CPU_CAPABILITY=default``)."""
    from torch._dynamo.exc import BackendCompilerFailed

    if isinstance(err, BackendCompilerFailed) or "InductorError" in type(err).__name__:
        pytest.skip(f"torch.compile cannot build its C++ on this CPU: {str(err)[:200]}")
    raise err


def test_torch_compile_small_case():
    torch.manual_seed(0)
    hull = AffineHull(BASES)
    with torch.no_grad():
        hull.raw.normal_()
    x = torch.randn(16, requires_grad=True)
    compiled = torch.compile(hull, fullgraph=True)
    try:
        y = compiled(x)
    except Exception as err:
        _skip_if_the_compiler_cannot_build_here(err)
    y.sum().backward()
    torch.testing.assert_close(y, hull(x))
    grad = x.grad.clone()
    x.grad = None
    hull(x).sum().backward()
    torch.testing.assert_close(grad, x.grad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda():
    hull = AffineHull(BASES, channels=3).cuda()
    x = torch.randn(4, 3, device="cuda", requires_grad=True)
    hull(x).sum().backward()
    assert x.grad.device.type == "cuda" and hull.raw.grad.device.type == "cuda"
    torch.testing.assert_close(hull(x).cpu(), hull.cpu()(x.detach().cpu()))


def test_compiled_kernel_matches_the_fused_one():
    """kernel='compiled' (torch.compile'd loops; one compile for both shapes below)."""
    from acthull import fused as kernels

    torch.manual_seed(0)
    fused = AffineHull(["identity", "relu", "tanh", "elu(tanh(x))"], channels=3)
    with torch.no_grad():
        fused.raw.normal_()
    compiled = copy.deepcopy(fused)
    compiled.kernel = "compiled"
    for shape in [(4, 3, 5, 5), (2, 3, 7, 1)]:
        x = torch.randn(*shape, requires_grad=True)
        assert _saved_shapes(compiled, x) == [x.shape]
        y = compiled(x)
        if kernels._COMPILE_PROBLEM:
            pytest.skip(f"torch.compile cannot build its C++ on this CPU: "
                        f"{kernels._COMPILE_PROBLEM[0][:200]}")
        torch.testing.assert_close(y, fused(x))
        expected = torch.autograd.grad(fused(x).square().sum(), (x, fused.raw))
        got = torch.autograd.grad(y.square().sum(), (x, compiled.raw))
        torch.testing.assert_close(got, expected)
    with pytest.raises(ActError, match="actcore expression"):
        ConvexHull([nn.Softplus(), "relu"], kernel="compiled")
    with pytest.raises(ActError, match="kernel must be"):
        ConvexHull(["relu"], kernel="fast")


def test_a_compiled_kernel_that_cannot_be_built_falls_back_with_one_warning(monkeypatch):
    from acthull import fused as kernels

    def broken(*args):
        raise RuntimeError("'at::vec' has not been declared")

    monkeypatch.setattr(kernels, "_COMPILE_PROBLEM", [])
    hull = AffineHull(["identity", "relu", "swish"], channels=3, kernel="compiled")
    with torch.no_grad():
        hull.raw.normal_()
    box = kernels.compiled_kernels(tuple(hull.base_names))
    monkeypatch.setattr(box, "compiled_forward", broken)
    monkeypatch.setattr(box, "compiled_backward", broken)
    eager = copy.deepcopy(hull)
    eager.kernel = "fused"
    x = torch.randn(4, 3, 5, requires_grad=True)
    with pytest.warns(RuntimeWarning, match="cannot be compiled on this machine.*at::vec"):
        y = hull(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        y2 = hull(x)
        y2.sum().backward()
    xe = x.detach().requires_grad_()
    ye = eager(xe)
    ye.sum().backward()
    assert torch.equal(y, ye) and torch.equal(y2, ye) and torch.equal(x.grad, xe.grad)
