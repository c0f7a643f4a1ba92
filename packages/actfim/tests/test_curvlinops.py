"""Cross-check against curvlinops-for-pytorch's KFACLinearOperator (test-only peer).

Same convention ("expand", weight and bias joined, mean-reduced loss): A and G agree
for Linear and Conv2d layers (stride 2, padding 1) with the type-2 and empirical
Fisher, and so do the spectra. curvlinops averages grouped-conv inputs over groups
(a coarser approximation), so grouped convolutions are not compared here.
"""

import pytest
import torch
from torch import nn

from actfim import kfac_factors, kfac_spectrum

curvlinops = pytest.importorskip("curvlinops")


def model_and_data():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.Tanh(),
        nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 10), nn.Tanh(), nn.Linear(10, 5),
    ).double()
    x = torch.randn(12, 3, 8, 8, dtype=torch.float64)
    y = torch.randint(0, 5, (12,))
    return model, x, y


def curvlinops_factors(model, x, y, fisher_type):
    op = curvlinops.KFACLinearOperator(
        model, nn.CrossEntropyLoss(), list(model.parameters()), [(x, y)],
        fisher_type={"type2": "type-2"}.get(fisher_type, fisher_type),
        separate_weight_and_bias=False, check_deterministic=False,
    )
    op.compute_kronecker_factors()
    return op._input_covariances, op._gradient_covariances


@pytest.mark.parametrize("fisher", ["type2", "empirical"])
def test_factors_agree_with_curvlinops(fisher):
    model, x, y = model_and_data()
    theirs_a, theirs_g = curvlinops_factors(model, x, y, fisher)
    ours, _, _ = kfac_factors(model, x, y, fisher=fisher, dtype=torch.float64)
    assert sorted(theirs_a) == sorted(f.name for f in ours)
    for f in ours:
        assert torch.allclose(f.a[0], theirs_a[f.name], rtol=1e-10, atol=1e-12), f.name
        assert torch.allclose(f.g[0], theirs_g[f.name], rtol=1e-10, atol=1e-14), f.name


def test_spectra_agree_with_curvlinops_eigenvalues():
    model, x, y = model_and_data()
    theirs_a, theirs_g = curvlinops_factors(model, x, y, "type2")
    spectrum = kfac_spectrum(model, x, fisher="type2", dtype=torch.float64)
    for layer in spectrum.layers:
        kron = torch.kron(theirs_a[layer.name], theirs_g[layer.name])
        true = torch.linalg.eigvalsh(kron).sort().values
        ours = layer.log_eigenvalues.exp().sort().values
        big = true > true.max() * 1e-10
        assert torch.allclose(ours[big], true[big], rtol=1e-7)
