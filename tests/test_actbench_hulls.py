"""actbench with acthull installed: hull expressions as model activations."""

from __future__ import annotations

import numpy as np
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


def test_learned_activations_are_recorded_and_drawn_per_layer(tmp_path, monkeypatch):
    """A hull run records its trained parameters per site; the Fig. 3-style plot rebuilds
    each site's function from them: {id, ReLU} hulls keep f(1) = 1 (the coefficients sum
    to one), and f(-1) = -c_id moved away from the initial -1/2."""
    import actbench.compare
    from actbench.compare import plot_learned

    runs = [actbench.train("mlp-digits", a, 0, epochs=2)
            for a in ("convex_n(identity(x),relu(x))", "affine_n(identity(x),relu(x))", "relu")]
    assert runs[2].learned == {}
    assert list(runs[0].learned) == ["2", "4", "6", "8", "10", "12"]  # the six hidden sites
    drawn = []
    real = actbench.compare.save_figure

    def keep(fig, path, **kwargs):
        drawn.append([ax for ax in fig.axes if ax.get_visible()])
        return real(fig, path, **kwargs)

    monkeypatch.setattr(actbench.compare, "save_figure", keep)
    plot_learned(runs, tmp_path / "learned.png")
    (axes,) = drawn
    assert [ax.get_title() for ax in axes][:2] == ["hidden layer 1 (module 2)",
                                                   "hidden layer 2 (module 4)"]
    for ax in axes:
        curves = [line for line in ax.get_lines() if len(line.get_xdata()) == 241]
        assert [line.get_linestyle() for line in curves] == ["--", "-"]  # convex, affine
        for line in curves:
            x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
            one, minus_one = np.abs(x - 1).argmin(), np.abs(x + 1).argmin()
            assert abs(x[one] - 1) < 1e-6 and y[one] == pytest.approx(1.0, abs=1e-5)
            assert abs(y[minus_one] + 0.5) > 1e-4  # trained away from 1/2
    assert (tmp_path / "learned.png").stat().st_size > 10_000


def test_a_seed_starts_a_hull_from_the_same_weights_as_relu():
    """Hull coefficients start at constants and draw no random numbers, so seed s of every
    activation has the same initial weights: runs of one seed are paired comparisons."""
    import torch

    from actbench.activations import activation_factory
    from actcore.threads import seeded

    def initial(activation: str) -> dict[str, torch.Tensor]:
        with seeded(3, torch.device("cpu")):
            model = registry(MODELS).get("lenet5").build(activation_factory(activation),
                                                         (1, 28, 28), 10)
        return dict(model.named_parameters())

    relu, hull = initial("relu"), initial("affine_n(identity(x),relu(x),tanh(x))")
    assert len(hull) == len(relu) + 3  # one coefficient vector per activation site
    assert all(torch.equal(weight, hull[name]) for name, weight in relu.items())


def test_a_learned_activation_is_rebuilt_from_its_record():
    """learned_activation is learned_state's inverse: each site's rebuilt function equals
    the model's own, to the bit; a record that does not fit the expression is refused."""
    import torch

    from actbench.train import learned_activation, learned_state
    from actcore import ActError

    activation = "affine_n(identity(x),relu(x),tanh(x))"
    model = registry(MODELS).get("mlp").build(activation, (1, 8, 8), 10)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter))  # away from the initial 1/3s
    record = actbench.Result(
        task="mlp-digits", activation=activation, seed=0, status="ok", train_accuracy=1,
        val_accuracy=1, test_accuracy=1, train_loss=0, val_loss=0, test_loss=0,
        runtime_s=1, epochs=1, learned=learned_state(model))
    x = torch.linspace(-3, 3, 61)
    with torch.no_grad():
        for site, module in model.named_children():
            if site in record.learned:
                assert torch.equal(learned_activation(record, site)(x), module(x))
    with pytest.raises(ActError, match="learned nothing at site '3'; its learned sites: 2, 4"):
        learned_activation(record, "3")
    (key,) = record.learned["2"]
    short = record.model_copy(update={"learned": {"2": {key: [0.5, 0.5]}}})
    with pytest.raises(ActError, match=f"records 2 values of {key}, the expression has 3"):
        learned_activation(short, "2")
    renamed = record.model_copy(update={"learned": {"2": {"w": [0.5, 0.5, 0.0]}}})
    with pytest.raises(ActError, match="records parameters \\['w'\\], the expression has"):
        learned_activation(renamed, "2")


def test_a_runs_clock_starts_after_the_native_kernel_is_compiled(monkeypatch):
    """On a cold cache the first hull forward compiles the kernel (seconds): that happens
    in the warm-up pass, before the run's clock starts, so runtime_s never counts it."""
    import importlib

    from acthull import native

    train_module = importlib.import_module("actbench.train")
    events: list[str] = []
    real_build, real_clock = native.build, train_module.Clock

    def build():
        events.append("compile")
        return real_build()

    class Clock(real_clock):
        def __init__(self, *args, **kwargs):
            events.append("clock")
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(native, "build", build)
    monkeypatch.setattr(train_module, "Clock", Clock)
    native.library.cache_clear()
    try:
        result = actbench.train("mlp-digits", "convex_n(identity(x),relu(x),tanh(x))", 0,
                                epochs=1)
    finally:
        native.library.cache_clear()
    assert result.status == "ok"
    assert events[-2:] == ["compile", "clock"] or (
        native.library() is None and events[-1] == "clock")
