"""Where do Fisher features carry signal about accuracy, and where does it go?

For a benchmark table and the task it was built on, this script

1. recomputes every function's K-FAC spectrum (the table's initial weights, seed 0)
   under variants of the Fisher: the table's own settings, the empirical Fisher with the
   true labels, and other batch sizes; it keeps each layer's log-eigenvalue quantiles
   (101 levels) and the table's CDF feature, a chunk of functions per file, so a stopped
   run resumes where it stopped;
2. checks the recomputed table-settings CDFs against the table's own column;
3. measures each feature set's signal, the same way for all: a KNR surrogate (k=3,
   distance weights, act's regressor) is fitted to 100 functions drawn at random and
   predicts the others; the score is the Spearman correlation of prediction and
   validation accuracy, over all functions and over the working ones only (those whose
   training did not fail at chance), and the ROC AUC of the prediction for telling
   failed from working functions; mean over 30 draws (and the working Spearman's standard
   deviation over the draws). Each set is scored through a 2-D
   UMAP embedding (the search's road: 3 neighbours for Fisher features, as published) and
   directly on the feature rows (no embedding), so a signal lost by the embedding shows;
   the whole-network Fisher sets also through a UMAP embedding with 15 neighbours (the
   outputs' setting);
4. draws, per layer, the median log-eigenvalue of each working function against its
   accuracy.

Feature sets: the table's CDF (Act-Bench layout: ⌊w/100⌋−1 bins a layer over
[−100, 100]), whole and per layer; the quantile function of each layer's log-eigenvalues
(:func:`actfim.fisher_quantiles`: 101 levels; the Manhattan distance of two quantile
functions is their 1-Wasserstein distance, with no range or bin count to choose), whole
and per layer; the same for each Fisher variant; the outputs, as the reference. Every
set is scored on the same functions: those with finite outputs and a valid spectrum in
every variant.

    .venv-dev/bin/python bench/actsearch_fisher_signal.py --table act-bench-fashion-mlp3 \
        --out out/fisher-signal-fashion-mlp3 [--variants mc:128 empirical:128 mc:32 mc:512]

``--table`` is a shipped table's name or a table file; the task and the Fisher settings
come from its card (``NAME.card.json`` beside it, as builds and ``act bench snapshot``
write it), or ``--task`` names the task for a table without one.

Writes ``signal.csv``, ``signal.md``, ``layers.png`` and the spectra (``spectra/``)
under ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHUNK = 100  # functions per saved file
TRAIN = 100  # functions the surrogate is fitted to, as after a search's budget
PREDICTED = 100  # at least this many left to predict (Spearman's error about 0.1)
DRAWS = 30
ROADS = ["UMAP(15) + KNR", "UMAP + KNR", "KNR"]


@dataclass(frozen=True)
class Variant:
    """A Fisher setting to recompute the spectra with."""

    fisher: str
    batch: int

    @property
    def name(self) -> str:
        return f"{self.fisher}:{self.batch}"

    @classmethod
    def parse(cls, text: str) -> Variant:
        fisher, _, batch = text.partition(":")
        return cls(fisher, int(batch))


# --- 1. spectra ---------------------------------------------------------------------


def compute_spectra(task: str, names: list[str], variant: Variant, folder: Path) -> dict:
    """Every function's per-layer quantiles and table CDF under ``variant``, from saved
    chunks where they exist."""
    import torch

    from actbench.executors import single_thread
    from actbench.fisher import fisher_batch, model_factory
    from actbench.tasks import get_task
    from actfim.batch import activation_spectra
    from actfim.features import fisher_cdf

    single_thread()
    folder.mkdir(parents=True, exist_ok=True)
    spec = get_task(task)
    inputs, targets = fisher_batch(spec.dataset, variant.batch, 0, None)
    chunks = []
    for number, start in enumerate(range(0, len(names), CHUNK)):
        path = folder / f"chunk-{number:03d}.npz"
        chunk = names[start : start + CHUNK]
        if not path.exists():
            began = time.perf_counter()
            rows = []
            for name, spectrum in activation_spectra(model_factory(task), chunk, inputs,
                                                     targets, seed=0, fisher=variant.fisher):
                layers = {layer.name: layer.log_eigenvalues for layer in spectrum.layers}
                rows.append((name, spectrum.valid, layers,
                             fisher_cdf(spectrum) if spectrum.valid else None))
            _save_chunk(path, rows)
            print(f"  {variant.name}: {start + len(chunk)}/{len(names)} functions "
                  f"({time.perf_counter() - began:.0f} s this chunk)", flush=True)
        with np.load(path, allow_pickle=False) as data:
            if list(data["names"]) != chunk:
                raise SystemExit(f"{path} holds other functions: remove {folder}")
            chunks.append({k: data[k] for k in data.files})
    torch.set_num_threads(os.cpu_count() or 1)
    first = next(c for c in chunks if c["valid"].any())
    for c in chunks:  # a chunk whose valid functions all miss a layer: not comparable
        if list(c["layers"]) != list(first["layers"]) or c["cdf"].shape[1:] != \
                first["cdf"].shape[1:]:
            n = len(c["names"])
            c.update(valid=np.zeros(n, bool), quantiles=np.full((n, *first["quantiles"].shape[1:]),
                     np.nan), cdf=np.full((n, *first["cdf"].shape[1:]), np.nan))
    found = {key: np.concatenate([c[key] for c in chunks])
             for key in ("valid", "quantiles", "cdf")}
    return found | {"layers": list(first["layers"]), "weights": first["weights"].tolist()}


def _save_chunk(path: Path, rows: list) -> None:
    """Quantiles (functions, layers, levels) keyed by the layers every valid function
    has, in call order; NaN where a function is invalid."""
    from actfim.features import QUANTILE_LEVELS, layer_quantiles

    valid = [r for r in rows if r[1]]
    layers = max((list(r[2]) for r in valid), key=len, default=[])
    width = max((len(r[3]) for r in valid), default=0)
    quantiles = np.full((len(rows), len(layers), len(QUANTILE_LEVELS)), np.nan)
    cdf = np.full((len(rows), width), np.nan)
    ok = np.zeros(len(rows), bool)
    for i, (_, is_valid, by_layer, row) in enumerate(rows):
        if not is_valid or list(by_layer) != layers or len(row) != width:
            continue  # a silent layer the others have: not comparable layer by layer
        ok[i] = True
        cdf[i] = row
        for j, name in enumerate(layers):
            quantiles[i, j] = layer_quantiles(by_layer[name])
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, names=np.array([r[0] for r in rows]), valid=ok, quantiles=quantiles,
             cdf=cdf, layers=np.array(layers),
             weights=np.array([len(valid[0][2][n]) for n in layers] if valid else []))
    os.replace(tmp, path)


# --- 3. scores ------------------------------------------------------------------------


def scores(rows: np.ndarray, kind: str, accuracy: np.ndarray, failed: np.ndarray,
           road: str, seed: int = 0) -> dict[str, float]:
    """Mean Spearman (all, working) and failed-vs-working AUC of KNR fitted to
    :data:`TRAIN` random functions, over :data:`DRAWS` draws; ``kind`` (``"outputs"`` or
    ``"fisher"``) picks the metric and the embedding's neighbours, as in a search;
    ``road`` is one of :data:`ROADS`."""
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score
    from sklearn.neighbors import KNeighborsRegressor

    from actsearch.embedding import METRICS, compute_embedding

    if len(rows) < TRAIN + PREDICTED:
        raise SystemExit(f"{len(rows)} functions to score: the surrogate is fitted to "
                         f"{TRAIN} and needs at least {PREDICTED} more to predict")
    metric = METRICS[kind]
    if road == "UMAP + KNR":
        rows, metric = compute_embedding({kind: rows}, kind, seed), "euclidean"
    elif road == "UMAP(15) + KNR":
        import umap

        model = umap.UMAP(n_neighbors=15, metric=metric, random_state=seed, n_jobs=1)
        rows, metric = model.fit_transform(rows), "euclidean"
    rng = np.random.default_rng(seed)
    found = {"all": [], "working": [], "auc": []}
    for _ in range(DRAWS):
        train = np.zeros(len(rows), bool)
        train[rng.choice(len(rows), TRAIN, replace=False)] = True
        model = KNeighborsRegressor(n_neighbors=3, weights="distance", metric=metric)
        predicted = model.fit(rows[train], accuracy[train]).predict(rows[~train])
        truth, bad = accuracy[~train], failed[~train]
        found["all"].append(spearmanr(predicted, truth).statistic)
        found["working"].append(spearmanr(predicted[~bad], truth[~bad]).statistic)
        found["auc"].append(roc_auc_score(~bad, predicted) if bad.any() else np.nan)
    means = {key: float(np.nanmean(values)) for key, values in found.items()}
    return means | {"sd working": float(np.std(found["working"]))}


def feature_sets(spectra: dict[str, dict], table_cdf: np.ndarray, layout, outputs,
                 default: str) -> dict[str, np.ndarray]:
    """Every feature set by name; rows in table order."""
    sets = {"outputs": outputs, "table CDF": table_cdf}
    for j, (offset, bins) in enumerate(zip(layout.offsets, layout.bins)):
        if bins:
            sets[f"table CDF, layer {j + 1}"] = table_cdf[:, offset : offset + bins]
    for name, spectrum in spectra.items():
        q = spectrum["quantiles"]
        sets[f"{name} CDF"] = spectrum["cdf"]
        sets[f"{name} quantiles"] = q.reshape(len(q), -1)
        if name == default:
            for j in range(q.shape[1]):
                sets[f"{name} quantiles, layer {j + 1}"] = q[:, j]
    return sets


# --- 4. the picture -------------------------------------------------------------------


def plot_layers(quantiles: np.ndarray, layers: list[str], accuracy: np.ndarray,
                failed: np.ndarray, title: str, path: Path) -> list[float]:
    """Per layer: median log-eigenvalue against validation accuracy, working functions;
    returns each layer's Spearman correlation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import spearmanr

    median = quantiles[:, :, quantiles.shape[2] // 2]
    columns = min(len(layers), 4)
    grid = -(-len(layers) // columns)
    fig, axes = plt.subplots(grid, columns, figsize=(3.4 * columns, 3.1 * grid + 0.6),
                             sharey=True, squeeze=False)
    rhos = []
    for j, ax in enumerate(axes.flat):
        if j >= len(layers):
            ax.set_visible(False)
            continue
        x, y = median[~failed, j], 100 * accuracy[~failed]
        rho = spearmanr(x, y).statistic
        rhos.append(float(rho))
        ax.scatter(x, y, s=4, alpha=0.35, color="tab:blue", linewidths=0)
        ax.set_title(f"layer {j + 1} (module {layers[j]}): Spearman {rho:+.2f}", fontsize=9)
        ax.set_xlabel("median log-eigenvalue", fontsize=9)
        ax.tick_params(labelsize=8)
    for row in axes:
        row[0].set_ylabel("validation accuracy (%)", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return rhos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True, help="table name or file")
    parser.add_argument("--task", default=None, help="default: the table's card")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variants", nargs="+", default=["mc:128", "empirical:128",
                                                          "mc:32", "mc:512"],
                        help="FISHER:BATCH; the first must be the table's own settings")
    parser.add_argument("--no-embedding", action="store_true",
                        help="score the rows directly only (no UMAP)")
    args = parser.parse_args()

    from actbench.card import card_path, read_card
    from actbench.tables import load_table, named_tables
    from actfim.features import layout_of
    from actsearch.features import fisher_matrix, output_features

    table = load_table(args.table)
    named = named_tables().get(args.table)
    card_file = card_path(named.path if named else args.table)  # a build's or snapshot's
    card = read_card(card_file) if card_file.is_file() else None
    task = args.task or (card.task if card else None)
    if task is None:
        raise SystemExit("--task is needed for a table without a card")
    variants = [Variant.parse(v) for v in args.variants]
    if card and variants[0].name != f"{card.fisher['type']}:{card.fisher['batch']}":
        raise SystemExit(f"the first variant must be the table's own settings "
                         f"({card.fisher['type']}:{card.fisher['batch']})")
    names = table.names()
    accuracy = np.array([table.records[n].val_accuracy for n in names], dtype=float)
    accuracy = np.where(np.isfinite(accuracy), accuracy, table.chance)
    failed = np.array([table.failed(n) for n in names])

    spectra = {}
    for variant in variants:
        print(f"spectra: {variant.name}", flush=True)
        spectra[variant.name] = compute_spectra(
            task, names, variant, args.out / "spectra" / variant.name.replace(":", "-"))

    table_cdf = fisher_matrix([table.records[n].fisher_cdf for n in names])
    own = spectra[variants[0].name]
    both = np.isfinite(table_cdf).all(1) & own["valid"]
    apart = np.abs(own["cdf"][both] - table_cdf[both]).max(1)
    print(f"check: valid in the table {np.isfinite(table_cdf).all(1).sum()}, recomputed "
          f"{own['valid'].sum()}; of the {both.sum()} valid in both, the recomputed "
          f"{variants[0].name} CDF equals the table's to the last bit for "
          f"{(apart == 0).sum()}, differs by at most 0.01 for {(apart <= 0.01).sum()} "
          f"(median {np.median(apart):.1e}) and by more than 0.5 for {(apart > 0.5).sum()} "
          "(a table built in stacked passes or on another CPU rounds differently; "
          "ill-conditioned functions' smallest eigenvalues are rounding noise)")

    outputs = output_features(names).astype(np.float64)
    keep = np.isfinite(outputs).all(1) & np.isfinite(table_cdf).all(1)
    for spectrum in spectra.values():
        keep &= spectrum["valid"]
    print(f"scored on {keep.sum()} of {len(names)} functions "
          f"({failed[keep].sum()} failed at chance)")
    layout = layout_of(table_cdf.shape[1], own["weights"])
    sets = feature_sets(spectra, table_cdf, layout, outputs, variants[0].name)
    results = []
    for name, rows in sets.items():
        rows = np.ascontiguousarray(rows[keep])
        roads = ["KNR"] if args.no_embedding else ROADS if name in (
            "table CDF", f"{variants[0].name} quantiles") else ROADS[1:]
        for road in roads:
            kind = "outputs" if name == "outputs" else "fisher"
            found = scores(rows, kind, accuracy[keep], failed[keep], road)
            results.append({"features": name, "road": road,
                            "width": rows.shape[1], **found})
            print(f"{name:32s} {road:14s} width {rows.shape[1]:6d}  "
                  f"Spearman all {found['all']:+.3f}  working {found['working']:+.3f}  "
                  f"AUC failed {found['auc']:.3f}", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "signal.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(results[0]))
        writer.writeheader()
        writer.writerows(results)
    rhos = plot_layers(own["quantiles"][keep], own["layers"], accuracy[keep], failed[keep],
                       f"{args.table}: each layer's median log-eigenvalue "
                       f"({variants[0].name} Fisher)\nagainst validation accuracy, functions "
                       "that did not fail at chance", args.out / "layers.png")
    with open(args.out / "signal.md", "w") as f:
        f.write("| features | road | width | Spearman (all) | Spearman (working) ± sd over "
                "draws | AUC failed/working |\n|---|---|---:|---:|---:|---:|\n")
        for r in results:
            f.write(f"| {r['features']} | {r['road']} | {r['width']} | {r['all']:+.3f} | "
                    f"{r['working']:+.3f} ± {r['sd working']:.3f} | {r['auc']:.3f} |\n")
        f.write("\nPer layer, median log-eigenvalue against accuracy (working functions): "
                + ", ".join(f"layer {j + 1} {rho:+.2f}" for j, rho in enumerate(rhos))
                + "\n")
    print(f"wrote {args.out}/signal.csv, signal.md, layers.png")


if __name__ == "__main__":
    main()
