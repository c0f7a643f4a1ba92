"""actfim on actbench's registered models, found through the registry only."""

import torch

import actfim
from actcore.cli import main
from actcore.plugins import MODELS, registry


def test_all_cnn_c_from_actbench_has_the_act_bench_feature_layout():
    model = registry(MODELS).get("allcnnc").build("relu(x)", (3, 32, 32), 10)
    spectrum = actfim.kfac_spectrum(model, torch.randn(2, 3, 32, 32))
    assert spectrum.valid, spectrum.reason
    assert spectrum.num_weights == actfim.ALL_CNN_C_NUM_WEIGHTS
    assert actfim.fisher_cdf(spectrum).shape == (13683,)


def test_act_fim_spectrum_on_an_actbench_model(capsys):
    status = main(["fim", "spectrum", "--model", "cnn", "--activation", "swish(x)",
                   "--input-shape", "3,16,16", "--classes", "10", "--batch-size", "8"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "Fisher CDF feature length" in out


def test_a_shape_that_contradicts_the_dataset_is_refused(capsys):
    status = main(["fim", "spectrum", "--model", "mlp", "--activation", "relu(x)",
                   "--dataset", "digits", "--input-shape", "3,32,32", "--batch-size", "8"])
    err = capsys.readouterr().err
    assert status == 2
    assert "--input-shape (3, 32, 32) contradicts --dataset digits" in err
