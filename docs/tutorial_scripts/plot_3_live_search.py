"""
A live search on your own task
==============================

The surrogate search (AQuaSurF's method) embeds every candidate function of a space by
its outputs (and, optionally, its Fisher spectrum) with UMAP, trains a handful of
baselines, then lets a regressor on the embedding pick each next function to train.
Here the task is one of your own: a dataset, a model and a recipe registered under a
name, through the same plugin road act's own tasks take.
"""

# %%
# Your task, as a plugin
# ----------------------
# A task names a dataset, a model and a recipe. A package would ship this plugin through
# the ``act`` entry-point group; in a script, :func:`actcore.plugins.register` does it.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from actbench import Recipe, Task
from actcore import hookimpl, plugins
from actsearch import SearchConfig, run_search


class MyTask:
    @hookimpl
    def act_tasks(self):
        quick = Recipe(optimizer="adam", lr=3e-3, epochs=3, batch_size=64, threads=1)
        return [Task("my-digits", "digits", "mlp", quick, "my quick digits task")]


plugins.register(MyTask(), name="my-task")

# %%
# Search a space
# --------------
# Every equivalence class of ``binary(unary(x),unary(x))`` over a few operators is a
# candidate; 14 trainings in all (the 8 published baselines first), one at a time here.
config = SearchConfig(task="my-digits", space=["binary(unary(x),unary(x))"],
                      operators=["relu", "tanh", "sigmoid", "identity", "negative", "add",
                                 "mul", "max"],
                      budget=14, features="outputs", regressor="knr")
out = Path(tempfile.mkdtemp())
evaluations = run_search(config, out, workers=0, progress=False)
for e in sorted(evaluations, key=lambda e: -e.val_accuracy)[:5]:
    print(f"{e.function:32s} validation {100 * e.val_accuracy:.1f}%")

# %%
# The search as it went
# ---------------------
accuracies = np.array([e.val_accuracy for e in evaluations])
fig, ax = plt.subplots(figsize=(5.5, 3.5))
ax.plot(range(1, len(accuracies) + 1), 100 * accuracies, "o", color="0.6",
        label="each training")
ax.plot(range(1, len(accuracies) + 1), 100 * np.maximum.accumulate(accuracies), "-",
        label="best so far")
ax.axvline(8.5, color="k", linewidth=0.6, linestyle=":")
ax.text(8.7, ax.get_ylim()[0] + 1, "surrogate picks →", fontsize=8)
ax.set_xlabel("evaluation")
ax.set_ylabel("validation accuracy (%)")
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()
plugins.unregister("my-task")
