"""Properties that must survive training."""

import pytest
import torch
from torch import nn

from acthull import AffineHull, ConvexHull, HullSpec, is_monotonic, replace_activations

MONOTONIC_BASES = ["identity", "relu", "tanh"]


def _mlp(spec: HullSpec) -> nn.Sequential:
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                          nn.Linear(16, 1))
    replace_activations(model, spec, example_input=torch.zeros(1, 4))
    return model


# Huge learning rates; an L1 loss keeps the gradients (not the parameters) bounded, so
# raw parameters swing by orders of magnitude without overflowing float32.
OPTIMIZERS = {
    "sgd+wd": lambda p: torch.optim.SGD(p, lr=10.0, momentum=0.9, weight_decay=0.01),
    "adamw": lambda p: torch.optim.AdamW(p, lr=100.0, weight_decay=0.01),
    "rmsprop": lambda p: torch.optim.RMSprop(p, lr=1000.0),
}


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_constraints_hold_after_1000_aggressive_steps(optimizer):
    torch.manual_seed(0)
    hulls = [ConvexHull(MONOTONIC_BASES, channels=8), AffineHull(MONOTONIC_BASES, channels=8),
             ConvexHull(MONOTONIC_BASES), AffineHull(MONOTONIC_BASES)]
    opt = OPTIMIZERS[optimizer]([h.raw for h in hulls])
    x = torch.randn(16, 8)
    target = torch.randn(16, 8) * 10
    start = [h.raw.detach().clone() for h in hulls]
    for _ in range(1000):
        opt.zero_grad()
        loss = sum((h(x) - target).abs().mean() for h in hulls)
        loss.backward()
        opt.step()
    for hull, before in zip(hulls, start, strict=True):
        assert not torch.equal(hull.raw, before)  # the optimizer really moved them
        c = hull.coefficients().detach()
        assert torch.isfinite(c).all()
        error = (c.sum(0) - 1).abs()
        assert (error <= 1e-6 * (1 + c.abs().sum(0))).all(), (hull, c)
        if isinstance(hull, ConvexHull):
            assert (c >= 0).all()


def test_convex_stays_monotonic_after_training_on_random_data():
    torch.manual_seed(0)
    model = _mlp(HullSpec(kind="convex", bases=MONOTONIC_BASES, granularity="channel"))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    x, y = torch.randn(256, 4), torch.randn(256, 1)
    start = [m.coefficients().detach().clone() for m in model if isinstance(m, ConvexHull)]
    for _ in range(150):
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
    hulls = [m for m in model if isinstance(m, ConvexHull)]
    moved = max((h.coefficients() - s).abs().max().item()
                for h, s in zip(hulls, start, strict=True))
    assert moved > 0.05
    assert all(is_monotonic(h, -10, 10) for h in hulls)


def test_same_data_makes_an_affine_hull_non_monotonic_but_not_a_convex_one():
    """Fit |x| = 2 relu(x) - x: reachable in aff({id, relu, tanh}), not in conv(...)."""
    torch.manual_seed(0)
    x = torch.randn(512) * 3
    target = x.abs()
    fitted = {}
    for hull in (AffineHull(MONOTONIC_BASES), ConvexHull(MONOTONIC_BASES)):
        opt = torch.optim.Adam(hull.parameters(), lr=0.05)
        for _ in range(400):
            opt.zero_grad()
            ((hull(x) - target) ** 2).mean().backward()
            opt.step()
        fitted[hull.kind] = hull
    assert not is_monotonic(fitted["affine"])
    assert is_monotonic(fitted["convex"])
    torch.testing.assert_close(
        fitted["affine"].coefficients(), torch.tensor([-1.0, 2.0, 0.0]), atol=0.05, rtol=0
    )
