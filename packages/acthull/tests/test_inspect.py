import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from actcore import ActError
from actcore.cli import main
from acthull import (
    AffineHull,
    CoefficientRecorder,
    ConvexHull,
    HullSpec,
    Trajectories,
    activation_layers,
    coefficients,
    freeze,
    function_values,
    is_monotonic,
    load_coefficients,
    load_layers,
    plot_functions,
    replace_activations,
    save_checkpoint,
)

PNG = b"\x89PNG\r\n\x1a\n"


def _model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 1))
    replace_activations(
        model, HullSpec(kind="affine", bases=["identity", "relu", "tanh"], granularity="channel"),
        types=(nn.ReLU,), example_input=torch.zeros(1, 2),
    )
    replace_activations(model, "add(convex_n(identity(x),relu(x)),tanh(x))", types=(nn.Tanh,))
    with torch.no_grad():
        model[1].raw.normal_()
        model[3].root.args[0].raw.copy_(torch.tensor([0.3, -0.2]))
    return model


def test_layers_and_coefficients():
    model = _model()
    assert list(activation_layers(model)) == ["1", "3"]
    coeffs = coefficients(model)
    assert list(coeffs) == ["1", "3.root.args.0"]
    assert coeffs["1"].shape == (3, 4)
    torch.testing.assert_close(coeffs["3.root.args.0"], torch.softmax(torch.tensor([0.3, -0.2]), 0))


def test_evaluate_matches_direct_formula():
    model = _model()
    x, y = function_values(model[3], -4, 4, 101)
    c = torch.softmax(torch.tensor([0.3, -0.2], dtype=torch.float64), 0)
    expected = c[0] * x + c[1] * torch.relu(x) + torch.tanh(x)
    torch.testing.assert_close(y, expected, atol=1e-6, rtol=1e-6)
    x, y = function_values(model[1], -4, 4, 101)
    assert y.shape == (101, 4)
    c = model[1].coefficients().detach().double()
    expected = c[0] * x[:, None] + c[1] * torch.relu(x)[:, None] + c[2] * torch.tanh(x)[:, None]
    torch.testing.assert_close(y, expected, atol=1e-6, rtol=1e-6)


def test_monotonicity_check():
    hull = AffineHull(["identity", "relu"])
    assert is_monotonic(hull)
    with torch.no_grad():
        hull.raw.copy_(torch.tensor([-1.0, 1.0]))  # c = (-0.5, 1.5): slope -0.5, then +1
    assert not is_monotonic(hull)
    assert is_monotonic(hull, lo=0.1, hi=5)
    decreasing = AffineHull(["identity", "negative"])
    with torch.no_grad():
        decreasing.raw.copy_(torch.tensor([-0.5, 0.5]))  # c = (0, 1): g = -x
    assert is_monotonic(decreasing)
    with pytest.raises(ActError, match="lo < hi"):
        function_values(hull, 1, -1)


def test_plots_are_pngs(tmp_path):
    model = _model()
    path = plot_functions(model, tmp_path / "fn.png")
    assert path.read_bytes()[:8] == PNG
    with pytest.raises(ActError, match="no hull"):
        plot_functions(nn.Sequential(nn.ReLU()), tmp_path / "none.png")
    assert plot_functions(freeze(model), tmp_path / "frozen.png").exists()


def test_recorder_records_each_step_and_resumes(tmp_path):
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    recorder = CoefficientRecorder(model, every=2)
    handle = recorder.attach(opt)
    x, y = torch.randn(16, 2), torch.randn(16, 1)
    for _ in range(6):
        opt.zero_grad()
        F.mse_loss(model(x), y).backward()
        opt.step()
    handle.remove()
    layer = recorder.trajectories.layers["1"]
    assert layer.steps == [0, 2, 4, 6]
    torch.testing.assert_close(torch.tensor(layer.values[-1]), model[1].coefficients().detach(),
                               check_dtype=False)
    assert layer.values[0] != layer.values[-1]
    path = recorder.save(tmp_path / "traj.json")
    assert json.loads(path.read_text())["format"] == "acthull-trajectories/1"
    resumed = CoefficientRecorder(model, resume=path)
    assert resumed.step == 6
    resumed.record(7)
    assert resumed.trajectories.layers["3.root.args.0"].steps == [0, 2, 4, 6, 7]
    assert resumed.plot(tmp_path / "traj.png").read_bytes()[:8] == PNG
    assert Trajectories.load(path).layers.keys() == {"1", "3.root.args.0"}
    with pytest.raises(ActError, match="not an acthull trajectory"):
        (tmp_path / "bad.json").write_text("{}x")
        Trajectories.load(tmp_path / "bad.json")


def test_checkpoint_round_trip(tmp_path):
    model = _model()
    path = save_checkpoint(tmp_path / "ck.pt", model, model_state=True)
    layers = load_layers(path)
    assert list(layers) == ["1", "3"]
    x = torch.randn(5, 4)
    assert torch.equal(layers["1"](x), model[1](x))
    assert torch.equal(layers["3"](x), model[3](x))
    payload = torch.load(path, weights_only=True)
    fresh = _model()
    with torch.no_grad():
        fresh[1].raw.zero_()
    fresh.load_state_dict(payload["model_state"])
    assert torch.equal(fresh(torch.ones(1, 2)), model(torch.ones(1, 2)))


def test_a_coefficients_only_checkpoint_loads_into_a_model_built_the_same_way(tmp_path):
    model = _model()
    path = save_checkpoint(tmp_path / "ck.pt", model)
    assert torch.load(path, weights_only=True)["model_state"] is None
    fresh = _model()
    with torch.no_grad():
        for p in fresh.parameters():
            p.zero_()
    assert load_coefficients(fresh, path) == ["1", "3"]
    for key, values in coefficients(model).items():
        torch.testing.assert_close(coefficients(fresh)[key], values, rtol=0, atol=0)
    with pytest.raises(ActError, match=r"only in the file: \['3'\]"):
        load_coefficients(nn.Sequential(nn.Linear(2, 4), model[1]), path)


def test_cli_show_and_trajectory(tmp_path, capsys):
    model = _model()
    save_checkpoint(tmp_path / "ck.pt", model)
    assert main(["hull", "show", str(tmp_path / "ck.pt"), "-o", str(tmp_path / "f.png")]) == 0
    out = capsys.readouterr().out
    assert "affine_n(identity(x),relu(x),tanh(x))" in out and "monotonic" in out
    assert (tmp_path / "f.png").read_bytes()[:8] == PNG
    recorder = CoefficientRecorder(model)
    recorder.record(0)
    recorder.save(tmp_path / "t.json")
    assert main(["hull", "trajectory", str(tmp_path / "t.json"), "-o",
                 str(tmp_path / "t.png")]) == 0
    assert (tmp_path / "t.png").exists()


@pytest.mark.parametrize("content", [None, b"not a checkpoint", "dict"])
def test_cli_rejects_bad_checkpoints(tmp_path, capsys, content):
    path = tmp_path / "bad.pt"
    if content == "dict":
        torch.save({"weights": torch.zeros(2)}, path)
    elif content is not None:
        path.write_bytes(content)
    assert main(["hull", "show", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("act: error:") and "Traceback" not in err
    assert "checkpoint" in err


def test_convex_hull_name_shows_in_act_ops(capsys):
    assert main(["ops"]) == 0
    out = capsys.readouterr().out
    assert "convex_n" in out and "affine_n" in out and "learnable" in out
    assert isinstance(ConvexHull(["relu"]), nn.Module)


def test_cli_refuses_to_show_diverged_coefficients(tmp_path, capsys):
    model = _model()
    with torch.no_grad():
        model[1].raw.fill_(float("nan"))
    save_checkpoint(tmp_path / "ck.pt", model)
    assert main(["hull", "show", str(tmp_path / "ck.pt")]) == 2
    err = capsys.readouterr().err
    assert "has non-finite hull coefficients" in err and "Traceback" not in err
