"""
Swap hulls into your own model
==============================

A hull activation is a learned combination of base functions, for example
``affine_n(identity(x),relu(x),tanh(x))`` = a·x + b·relu(x) + c·tanh(x) with a, b, c
learned per layer (``convex_n`` keeps them non-negative and summing to one). One call puts
one into every activation site of any PyTorch model; after training, the learned
functions are read back and drawn.
"""

# %%
# A model of your own
# -------------------
# Any ``nn.Module`` works; here a small MLP for scikit-learn's 8×8 digits.
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

import acthull

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                      nn.Linear(64, 10))

# %%
# One line: every ReLU becomes its own hull
# -----------------------------------------
replaced = acthull.replace_activations(model, "affine_n(identity(x),relu(x),tanh(x))")
print(model)

# %%
# Train as usual
# --------------
# The hulls' coefficients are parameters like any other: the optimiser sees them.
digits = load_digits()
x = torch.tensor(digits.data, dtype=torch.float32) / 16
y = torch.tensor(digits.target)
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
for _ in range(30):
    for batch in torch.randperm(len(x)).split(64):
        loss = F.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
accuracy = (model(x).argmax(1) == y).float().mean().item()
print(f"training accuracy after 30 epochs: {100 * accuracy:.1f}%")

# %%
# Read the learned functions back
# -------------------------------
# :func:`acthull.coefficients` gives each layer's coefficients by site;
# :func:`acthull.function_values` evaluates a layer's learned function on a grid.
for site, values in acthull.coefficients(model).items():
    print(site, [round(v, 3) for v in values.flatten().tolist()])

fig, ax = plt.subplots(figsize=(5, 3.5))
for site, layer in acthull.hulls(model).items():
    grid, values = acthull.function_values(layer, -3, 3)
    ax.plot(grid, values, label=f"layer {site}")
ax.plot(grid, torch.relu(grid), "k--", linewidth=0.8, label="relu (before)")
ax.set_xlabel("x")
ax.set_ylabel("learned f(x)")
ax.legend()
ax.grid(alpha=0.3)
ax.set_title("the hulls each layer learned")
fig.tight_layout()
