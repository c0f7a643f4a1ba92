"""
The Fisher spectrum of your own model
=====================================

act's search features include the eigenvalues of a network's Fisher information at
initialisation, approximated by K-FAC: per layer, the Kronecker product of the input's
second moment A and the output gradient's second moment G, whose eigenvalues are all
products of the factors' eigenvalues. :func:`actfim.kfac_spectrum` computes them for any
model on a batch; :func:`actfim.fisher_cdf` turns them into the fixed-length features
act's tables and searches use.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

import actcore
import actfim

digits = load_digits()
inputs = torch.tensor(digits.data[:128], dtype=torch.float32) / 16


def model_with(activation: str) -> nn.Module:
    """The same weights (seed 0) around a given activation function."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 64), actcore.to_module(activation),
                         nn.Linear(64, 64), actcore.to_module(activation), nn.Linear(64, 10))


# %%
# One spectrum per layer
# ----------------------
spectrum = actfim.kfac_spectrum(model_with("relu(x)"), inputs)
print("valid:", spectrum.valid)
for layer in spectrum.layers:
    print(layer.summary())

# %%
# Functions compared by their spectra
# -----------------------------------
# The settings (Fisher type, label draws, precision, mode) are one checked record,
# :class:`actfim.FisherOptions`; the same options serve every function.
options = actfim.FisherOptions(fisher="mc", seed=0)
fig, ax = plt.subplots(figsize=(5.5, 3.5))
for activation in ("relu(x)", "tanh(x)", "swish(x)", "sigmoid(x)"):
    s = actfim.kfac_spectrum(model_with(activation), inputs, options=options)
    values = np.sort(s.log_eigenvalues().numpy() / np.log(10))
    ax.plot(values, np.linspace(0, 1, len(values)), label=activation)
ax.set_xlabel("log10 eigenvalue")
ax.set_ylabel("fraction of eigenvalues below")
ax.set_title("K-FAC eigenvalue distributions at initialisation")
ax.set_xlim(-12, 2)
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()

# %%
# A function that silences the network is invalid, with the reason
# ----------------------------------------------------------------
dead = actfim.kfac_spectrum(model_with("zero(x)"), inputs)
print(dead.valid, dead.reason)
print("features of relu:", actfim.fisher_cdf(spectrum).shape)
