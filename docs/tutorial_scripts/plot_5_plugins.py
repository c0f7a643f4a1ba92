"""
Write a plugin: an operator, a regressor and a task
===================================================

Everything in act is a plugin on pluggy, as in pytest: operators, regressors,
strategies, datasets, models, tasks and tables. A package adds its own by naming a
module in the ``act`` entry-point group of its ``pyproject.toml``::

    [project.entry-points.act]
    my-things = "my_package.act_plugin"

and marking the module's hook functions with ``actcore.hookimpl``. act's own packages take
the same road, and so do the two complete third-party packages in the repository's
``examples/`` folder (``act-cube`` adds an operator, ``act-idw-regressor`` a regressor),
which CI installs from their own ``pyproject.toml`` and tests. Here the three hooks are
registered from a script instead (:func:`actcore.plugins.register`), which is what the
entry point does when act loads its plugins.
"""

# %%
# An operator
# -----------
# A unary operator: a name, a torch function, and how it prints.
import matplotlib.pyplot as plt
import torch

import actcore
from actbench import Recipe, Task, train
from actcore import hookimpl, plugins
from actcore.operators import Operator
from actsearch import get_regressor


class Things:
    @hookimpl
    def act_operators(self):
        return [Operator("softclip", 1, lambda x: torch.tanh(x) * torch.sigmoid(x),
                         description="tanh(x)·sigmoid(x)")]

    @hookimpl
    def act_regressors(self):
        from sklearn.neighbors import KNeighborsRegressor

        from actsearch import Regressor

        return [Regressor("knr1", lambda seed: KNeighborsRegressor(n_neighbors=1),
                          "one nearest neighbour")]

    @hookimpl
    def act_tasks(self):
        recipe = Recipe(optimizer="adam", lr=3e-3, epochs=5, batch_size=64, threads=1)
        return [Task("digits-cnn-quick", "digits", "cnn", recipe, "a quick CNN task")]


plugins.register(Things(), name="things")
print(actcore.parse("add(softclip(x),relu(x))"))

# %%
# The new operator in a function, trained on the new task; the new regressor found by name
result = train("digits-cnn-quick", "add(softclip(x),relu(x))", seed=0)
print(f"{result.activation}: validation {100 * result.val_accuracy:.1f}%")
print(get_regressor("knr1"))

x = torch.linspace(-4, 4, 201)
fig, ax = plt.subplots(figsize=(5, 3.3))
for text in ("softclip(x)", "add(softclip(x),relu(x))"):
    ax.plot(x, actcore.to_module(text)(x).detach(), label=text)
ax.grid(alpha=0.3)
ax.legend()
ax.set_title("a plugin's operator, used in an expression")
fig.tight_layout()
plugins.unregister("things")
