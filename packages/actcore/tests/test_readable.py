"""Readable names are the same functions, shorter."""

import torch

from actcore import Space, evaluate, sample_points
from actcore.readable import readable


def test_readable_names_compute_the_same_function_everywhere():
    names = [str(f) for f in Space("binary(unary(x),unary(x))")]
    short = [readable(n) for n in names]
    changed = [(n, s) for n, s in zip(names, short) if n != s]
    assert len(changed) > 300 and ("div(relu(x),one(x))", "relu(x)") in changed
    x = torch.cat([sample_points().double(),
                   torch.tensor([0.0, -0.0, 1e300, -1e300, float("inf"), -float("inf")],
                                dtype=torch.float64)])
    a = evaluate([n for n, _ in changed], x)
    b = evaluate([s for _, s in changed], x)
    same = (a == b) | (torch.isnan(a) & torch.isnan(b))
    assert same.all(), [changed[i] for i in torch.nonzero(~same.all(dim=1)).flatten()[:5]]
    assert all(len(s) < len(n) for n, s in changed)
