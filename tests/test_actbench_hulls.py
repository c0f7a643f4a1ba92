"""actbench with acthull installed: hull expressions as model activations."""

from __future__ import annotations

import pytest

import actbench
from actbench.hookspecs import MODELS
from actcore.plugins import OPERATORS, registry

pytestmark = pytest.mark.skipif(
    "convex_n" not in registry(OPERATORS), reason="acthull is not installed"
)


def test_each_layer_gets_its_own_hull_coefficients():
    mlp = registry(MODELS).get("mlp")
    plain = actbench.parameter_count(mlp.build("relu", (1, 8, 8), 10))
    model = mlp.build("affine_n(identity(x),relu(x),tanh(x))", (1, 8, 8), 10)
    extra = actbench.parameter_count(model) - plain
    assert extra > 0 and extra % 6 == 0  # the same number for each of the 6 hidden layers
    # Sequential: Flatten, then (Linear, activation) x 6, Linear: activations at 2, 4, ... 12
    hull_params = [p for n, p in model.named_parameters() if n.split(".")[0] in
                   {str(i) for i in range(2, 13, 2)}]  # fmt: skip
    assert sum(p.numel() for p in hull_params) == extra
    assert len({p.data_ptr() for p in hull_params}) == len(hull_params)


def test_hull_activations_train_on_digits():
    result = actbench.train("mlp-digits", "convex_n(identity(x),relu(x))", seed=0, epochs=5)
    assert result.status == "ok" and result.val_accuracy > 0.5
    assert result.activation == "convex_n(identity(x),relu(x))"
