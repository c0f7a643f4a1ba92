"""The surrogate paper's three feature claims, judged on act's replays.

The paper (KNR and RFR, each on union, outputs and Fisher features, against random
search, on three benchmark tables) claims:

1. every regressor beats random search with every feature type;
2. both feature types together (union) beat either alone, for every regressor;
3. KNR is the best regressor.

This script reads ``act search replay`` reports (``replay.csv``, every algorithm above,
100 trials each) and judges each claim per table on two figures of every trial: the
mean of its best-so-far curve over the budget (how soon it finds good functions) and its
final best. One algorithm beats another where its mean is higher by more than two
standard errors of the difference (Welch); within two, it is a tie.

    .venv-dev/bin/python bench/actsearch_claims.py \
        digits=out/replay-digits fashion-mlp3=out/replay-fashion [--markdown FILE]
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

REGRESSORS = ("KNR", "RFR")
FEATURES = ("union", "outputs", "fisher")


def trial_figures(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    """Per algorithm, each trial's mean best-so-far and final best (accuracy, %)."""
    curves: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    with open(folder / "replay.csv", newline="") as f:
        for row in csv.DictReader(f):
            curves[row["algorithm"]][int(row["trial"])].append(100 * float(row["best_so_far"]))
    return {name: {"mean best": np.array([np.mean(c) for c in trials.values()]),
                   "final best": np.array([c[-1] for c in trials.values()])}
            for name, trials in curves.items()}


def compare(a: np.ndarray, b: np.ndarray) -> tuple[str, float, float]:
    """``a`` against ``b``: verdict, difference of means, its standard error."""
    difference = float(a.mean() - b.mean())
    error = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    if difference > 2 * error:
        return "beats", difference, error
    if difference < -2 * error:
        return "loses to", difference, error
    return "ties", difference, error


def judge(figures: dict[str, dict[str, np.ndarray]], metric: str) -> list[tuple[str, str, str]]:
    """Each claim: (claim, verdict, the comparisons behind it)."""

    def versus(a: str, b: str) -> tuple[str, str]:
        verdict, difference, error = compare(figures[a][metric], figures[b][metric])
        return verdict, f"{a} {verdict} {b} ({difference:+.2f} ± {error:.2f})"

    def verdict(results: list[tuple[str, str]]) -> str:
        wins = sum(v == "beats" for v, _ in results)
        if wins == len(results):
            return "holds"
        return "fails" if wins == 0 else f"partly ({wins} of {len(results)})"

    surrogate = [f"{r} ({f})" for r in REGRESSORS for f in FEATURES]
    first = [versus(s, "random") for s in surrogate]
    second = [versus(f"{r} (union)", f"{r} ({f})") for r in REGRESSORS for f in FEATURES[1:]]
    third = [versus(f"KNR ({f})", f"RFR ({f})") for f in FEATURES]
    return [(claim, verdict(results), "; ".join(text for _, text in results))
            for claim, results in (("1. every surrogate beats random search", first),
                                   ("2. union beats outputs and Fisher alone", second),
                                   ("3. KNR beats RFR", third))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("replays", nargs="+", metavar="TABLE=FOLDER")
    parser.add_argument("--markdown", type=Path, help="also write the verdicts here")
    args = parser.parse_args()
    lines = ["| claim | figure | " + " | ".join(r.split("=")[0] for r in args.replays)
             + " |", "|---|---|" + "---|" * len(args.replays)]
    details = []
    judged = {}
    for item in args.replays:
        table, _, folder = item.partition("=")
        figures = trial_figures(Path(folder))
        for metric in ("mean best", "final best"):
            judged[table, metric] = judge(figures, metric)
            details += [f"{table}, {metric}, {claim}: {why}"
                        for claim, _, why in judged[table, metric]]
    for index in range(3):
        for metric in ("mean best", "final best"):
            claim = judged[next(iter(judged))][index][0]
            cells = [judged[r.split("=")[0], metric][index][1] for r in args.replays]
            lines.append(f"| {claim} | {metric} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n\n" + "\n".join(f"- {d}" for d in details) + "\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
