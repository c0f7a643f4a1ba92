import numpy as np
import pytest
import torch

from actcore import ActError, Space, evaluate, sample_points, to_module
from actcore.evaluate import exact_outputs, pad, round_to_float32


def test_sample_points_are_fixed_clipped_normal_float32():
    x = sample_points()
    assert x.dtype == torch.float32 and x.shape == (1000,)
    assert torch.equal(x, sample_points())
    expected = np.random.default_rng(0).standard_normal(1000).clip(-5, 5).astype(np.float32)
    assert np.array_equal(x.numpy(), expected)
    assert abs(float(x.mean())) < 0.1 and 0.9 < float(x.std()) < 1.1
    assert sample_points(80).shape == (80,) and not torch.equal(sample_points(seed=1), x)


def test_evaluate_matches_compiled_modules_bit_for_bit():
    names = [str(e) for e in Space("binary(unary(x),unary(x))").sample(400, seed=2)]
    names += ["x", "relu(x)", "sum_n(abs(x),swish(x),sigmoid(x))", "max(relu(x),cosh(elu(x)))"]
    x = sample_points()
    out = evaluate(names, x)
    assert out.shape == (len(names), 1000) and out.dtype == torch.float32
    for name, row in zip(names, out, strict=True):
        expected = to_module(name)(pad(x))[:1000]  # same aligned row as evaluate uses
        assert torch.equal(row.nan_to_num(7.0), expected.nan_to_num(7.0)), name


def test_rows_do_not_depend_on_the_batch():
    names = [str(e) for e in Space("unary(binary(unary(x),unary(x)))").sample(3000, seed=1)]
    together = evaluate(names)
    alone = torch.cat([evaluate([n]) for n in names[:50]])
    assert torch.equal(together[:50].nan_to_num(7.0), alone.nan_to_num(7.0))


def test_float64_and_default_sample():
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)
    out = evaluate(["square(x)", "x"], x)
    assert out.dtype == torch.float64
    assert torch.equal(out, torch.stack([x * x, x]))
    assert evaluate(["x"]).shape == (1, 1000)


def test_bad_input():
    with pytest.raises(ActError, match="one-dimensional"):
        evaluate(["x"], torch.zeros(2, 2))
    with pytest.raises(ActError, match="unknown operator"):
        evaluate(["relu(x)", "rel(x)"])


def test_round_to_float32_rounds_near_ties_as_ties():
    x = sample_points().double()
    ties = 1.0 + x  # 25 significant bits: many lie exactly halfway between float32s
    exact = ties.float()  # correct rounding, ties to even
    assert torch.equal(round_to_float32(ties), exact)
    for rel in (2.0**-52, -(2.0**-50), 2.0**-40, -(2.0**-38)):  # kernel-sized errors
        assert torch.equal(round_to_float32(ties * (1 + rel)), exact), rel
    # a value far from any tie rounds to nearest, as plain rounding does
    rng = torch.Generator().manual_seed(0)
    values = torch.randn(100_000, generator=rng, dtype=torch.float64) * 1e3
    plain = values.float()
    snapped = round_to_float32(values)
    changed = (snapped != plain).float().mean().item()
    assert changed < 2.0**-11  # only values within 2**-36 of a tie (expected 2**-12)
    half_ulp = (torch.nextafter(plain, torch.tensor(float("inf"))).double() - plain.double()) / 2
    assert ((snapped.double() - values).abs() <= half_ulp * (1 + 2.0**-12)).all()
    # non-finite values and float32 overflow
    special = torch.tensor([float("inf"), float("-inf"), float("nan"), 1e300, -0.0])
    out = round_to_float32(special.double())
    assert out[0] == float("inf") and out[1] == float("-inf") and out[2].isnan()
    assert out[3] == float("inf") and out[4] == 0 and torch.signbit(out[4])


def test_exact_outputs_do_not_depend_on_float32_kernels():
    names = ["sub(exp(x),expm1(x))", "one(x)", "erf(x)", "add(one(x),identity(x))"]
    values, flags = exact_outputs(names)
    assert values.dtype == torch.float32 and values.shape == (4, 1000)
    assert torch.equal(values[0], values[1]) and not flags.any()
    reference = evaluate(names, sample_points().double())  # float64, then rounded
    assert (values - reference.float()).abs().max() <= 2.0**-23 * 4  # at most an ulp off
