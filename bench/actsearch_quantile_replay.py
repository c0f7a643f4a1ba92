"""Does the published search find good functions sooner with Fisher quantile features
than with the published CDF? A replay on a benchmark table with both, from one set of
spectra.

The table's accuracies stand in for training (as in ``act search replay``); the Fisher
features are recomputed: ``--spectra`` is one variant's folder of
``bench/actsearch_fisher_signal.py`` (every function's spectrum on the table's initial
weights), which holds each function's Act-Bench CDF and its per-layer quantile
functions (101 levels). Both feature kinds come from the same spectra, so the candidates
(functions with finite outputs and a valid spectrum) are the same; only the Fisher rows
differ. KNR (the published regressor) on the Fisher features alone and on the union
with the outputs, ``--trials`` trials each over ``--embeddings`` UMAP embeddings.

    .venv-dev/bin/python bench/actsearch_quantile_replay.py --table act-bench-fashion-allconv \
        --spectra out/fisher-signal-fashion-allconv/spectra/mc-128 --out out/quantile-replay

Prints the replay summary per algorithm and writes ``summary.csv`` and ``replay.png``
under ``--out`` (trials are checkpointed there: a stopped run resumes), and compares
the two kinds on each trial's mean best-so-far and final best as
``bench/actsearch_claims.py`` judges claims (more than two standard errors apart, Welch).
The trials of one kind share its embeddings, so these errors leave out how much another
set of embeddings would move a mean.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from actsearch_claims import compare  # bench/, beside this script


def load_spectra(folder: Path, names: list[str]) -> dict[str, np.ndarray]:
    """The chunks' CDF and flattened quantile rows in table order; NaN rows where a
    spectrum is invalid (or lacks a layer the others have)."""
    chunks = sorted(folder.glob("chunk-*.npz"))
    if not chunks:
        raise SystemExit(f"{folder} holds no chunk-*.npz (bench/actsearch_fisher_signal.py "
                         "writes them)")
    parts: dict[str, list] = {"names": [], "valid": [], "cdf": [], "quantiles": []}
    width = {}
    for path in chunks:
        with np.load(path, allow_pickle=False) as data:
            parts["names"] += list(data["names"])
            parts["valid"].append(data["valid"])
            for key in ("cdf", "quantiles"):
                rows = data[key].reshape(len(data["names"]), -1)
                if data["valid"].any():  # the widest: every layer
                    width[key] = max(width.get(key, 0), rows.shape[1])
                parts[key].append(rows)
    if parts["names"] != names:
        raise SystemExit(f"{folder} holds spectra of other functions than the table's")
    if not width:
        raise SystemExit(f"{folder} holds no valid spectrum")
    valid = np.concatenate(parts["valid"])
    found = {"valid": valid}
    for key in ("cdf", "quantiles"):  # a chunk without a valid spectrum may be narrower
        rows = np.full((len(names), width[key]), np.nan)
        start = 0
        for block in parts[key]:
            if block.shape[1] == width[key]:
                rows[start : start + len(block)] = block
            start += len(block)
        rows[~valid] = np.nan
        found[key] = rows
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True)
    parser.add_argument("--spectra", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--embeddings", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=None)
    args = parser.parse_args()


    from actbench.tables import load_table
    from actsearch import plot, replay, replay_summary
    from actsearch.features import Features, output_features

    table = load_table(args.table)
    names = table.names()
    spectra = load_spectra(args.spectra, names)
    outputs = output_features(names)
    print(f"{len(names)} functions, {spectra['valid'].sum()} with a valid recomputed "
          f"spectrum; CDF width {spectra['cdf'].shape[1]}, quantiles "
          f"{spectra['quantiles'].shape[1]}", flush=True)

    summaries, curves, spearman, panels = [], {}, {}, {}
    problem = None
    for kind in ("cdf", "quantiles"):
        features = Features(names, outputs=outputs, fisher=spectra[kind])
        problems = {fs: replay.prepare(table, features, fs, 0, True, args.embeddings)
                    for fs in ("fisher", "union")}
        algorithms = [replay.Algorithm("surrogate", "knr", fs) for fs in problems]
        if kind == "cdf":
            algorithms.append(replay.Algorithm("random", "knr", "fisher"))
        results = replay.replay(problems, algorithms, args.trials, args.budget,
                                jobs=args.jobs, checkpoint=args.out / "trials")
        for algorithm, trials in results.items():
            label = algorithm.label if algorithm.strategy == "random" else \
                f"KNR, Fisher {kind} ({algorithm.features})"  # a colour per Fisher kind
            problem = problems[algorithm.features]
            summary = replay_summary.summarise(problem, algorithm, trials)
            summaries.append(summary.model_copy(update={"algorithm": label}))
            curves[label] = replay_summary.best_curves(trials)
            spearman[label] = replay_summary.spearman_curves(trials)
            panel = "Fisher" if algorithm.features == "fisher" else "union"
            for key in ([panel] if algorithm.strategy != "random" else ["Fisher", "union"]):
                panels.setdefault(key, []).append(label)

    args.out.mkdir(parents=True, exist_ok=True)
    fisher, _, batch = args.spectra.name.rpartition("-")  # the signal script's FISHER-BATCH
    fields = list(replay_summary.Summary.model_fields)
    with open(args.out / "summary.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        writer.writerows([getattr(s, name) for name in fields] for s in summaries)
    plot.plot_replay(curves, spearman, args.out / "replay.png", problem.start_accuracy,
                     float(problem.accuracy.max()),
                     f"{args.table}, {fisher} Fisher of {batch} images: Fisher CDF against "
                     f"quantile features, {args.trials} trials on {args.embeddings} "
                     "embeddings", panels)
    print("| algorithm | final best (mean ± s.e.) | evaluations to beat ReLU (share) | to "
          "the top 1% (share) | Spearman |")
    print("|---|---:|---:|---:|---:|")
    for s in summaries:
        final = 100 * curves[s.algorithm][:, -1]
        error = final.std(ddof=1) / np.sqrt(len(final))
        print(f"| {s.algorithm} | {final.mean():.2f} ± {error:.3f}% | "
              f"{s.evals_to_beat_relu:.1f} "
              f"({s.beat_relu_fraction:.0%}) | {s.evals_to_top1pct:.1f} "
              f"({s.top1pct_fraction:.0%}) | {s.spearman_mean:.2f} |")
    for fs in ("fisher", "union"):  # Welch, as bench/actsearch_claims.py judges claims
        quantiles, cdf = (100 * curves[f"KNR, Fisher {kind} ({fs})"] for kind in
                          ("quantiles", "cdf"))
        for figure, rows in (("mean best", (quantiles.mean(1), cdf.mean(1))),
                             ("final best", (quantiles[:, -1], cdf[:, -1]))):
            verdict, difference, error = compare(*rows)
            print(f"{fs}, {figure}: quantiles {verdict} the CDF ({difference:+.3f} ± "
                  f"{error:.3f} points)")
    print(f"wrote {args.out}/summary.csv and replay.png")


if __name__ == "__main__":
    main()
