"""
Build a benchmark table and replay a search on it
=================================================

A benchmark table trains every equivalence class of a space with a few seeds and records
each function's accuracies, Fisher CDF features and outputs, in the public Act-Bench
format. A search can then be *replayed* on it a hundred times in minutes: the table
answers every training. This builds a tiny table and replays the search on it.
"""

# %%
# Build
# -----
# The builder trains every class (here 5 operators, 2 seeds, 2 epochs), keeps each result
# in a work store as it finishes (a stopped build resumes), and writes the table and a
# card with its settings and cost.
import os
import tempfile
from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt

from actbench import read_table
from actbench.build import BuildConfig, build
from actcore.cli import main

folder = Path(tempfile.mkdtemp())
config = BuildConfig(task="mlp-digits", schemas=["binary(unary(x),unary(x))"],
                     operators=["relu", "tanh", "sigmoid", "identity", "add", "mul", "max"],
                     seeds=2, overrides={"epochs": 2}, fisher_batch=32)
summary = build(config, folder / "tiny.json.gz", workers=0, progress=False)
table = read_table(summary.out)
print(f"{len(table)} functions; the best by validation accuracy:")
for name in sorted(table, key=lambda n: -table[n].val_accuracy)[:5]:
    print(f"  {name:36s} {100 * table[name].val_accuracy:.1f}%")

# %%
# Replay
# ------
# The same command as ``act search replay --table tiny.json.gz ...``: KNR on the union of
# output and Fisher features, against random search, 10 trials of 12 evaluations.
os.chdir(folder)  # short names in the figure's title
main(["-q", "search", "replay", "--table", summary.out.name, "--regressor", "knr",
      "--features", "union", "--trials", "10", "--budget", "12", "--embeddings", "2",
      "--jobs", "1", "-o", str(folder / "replay")])
picture = next((folder / "replay").glob("*.png"))
fig, ax = plt.subplots(figsize=(7, 4.5))
ax.imshow(mpimg.imread(picture))
ax.axis("off")
fig.tight_layout()
