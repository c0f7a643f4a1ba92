"""The hull paper's claims (a)-(d), read from a `bench compare` results file after any
epoch of its runs' learning curves (or at their final epoch): one table row per epoch.

(a) the best configuration is a hull (median test accuracy over seeds);
(b) the affine hull beats the convex one, per base set (medians);
(c) the best hull's median test accuracy minus the best customary activation's
    (identity, ReLU, tanh, leaky ReLU): the paper reports +0.69 points for LeNet-5 on
    Fashion-MNIST;
(d) conv({id, ReLU}) matches or beats leaky ReLU (medians).

(c) also gives both activations' range over seeds. Single epochs swing by points, so
``--smoothed`` reads each run's median test accuracy over the ten epochs ending at each
epoch asked for instead of that epoch's alone: a verdict that flips between the two rests
on one epoch's noise.

Run: ``.venv-dev/bin/python bench/actbench_hull_claims.py --results
packages/actbench/docs/lenet5-fashion-mnist-hulls-100.jsonl --at 6 25 50 100``
(no ``--at``: the runs' final figures; ``--seeds K``: only each activation's seeds 0 to
K−1; ``--smoothed``: ten-epoch medians).

``--windows 41 51 61 71 81 91`` prints instead, for the activations and seeds saved so
far (a grid still running), each activation's median over seeds of every run's median
validation accuracy over ten epochs from each of those epochs on (single epochs swing by
points), and each run's training loss after the last epoch of each window: whether a
curve still climbs late in training; then each run's lowest training loss and when, and
how much its validation accuracy moves from one epoch to the next in the second half.
``--learned`` prints each hull run's trained coefficients per activation site, marks the
sites where its function is not monotonic on [-5, 5], and counts them per kind of hull:
claim (e), convex hulls stay monotonic (they must: a convex combination of increasing
bases), affine ones need not.
``--leads`` prints each hull's lead over the best customary activation seed by seed, at
each epoch asked for: a seed fixes a run's initial weights (hull coefficients draw no
random numbers) and its batches, so the same seed of two activations is a paired
comparison.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from collections import Counter

from actbench_lenet5_sanity import SMOOTHING, window_median  # bench/, beside this script

from actbench.compare import load_results
from actbench.curves import figures_at
from actcore import ActError

CUSTOMARY = ("identity(x)", "relu(x)", "tanh(x)", "leakyrelu(x)")
BASE_SETS = ("identity(x),relu(x)", "identity(x),tanh(x)", "relu(x),tanh(x)",
             "identity(x),relu(x),tanh(x)")  # fmt: skip
GRID = CUSTOMARY + tuple(f"{hull}({bases})" for bases in BASE_SETS
                         for hull in ("convex_n", "affine_n"))  # fmt: skip


def seeds_per_activation(results) -> Counter:
    """The grid's runs per activation; an activation of the twelve without any is an
    error naming it (claims over part of the grid would compare other sets)."""
    runs = Counter(r.activation for r in results)
    missing = [name for name in GRID if name not in runs]
    if missing:
        raise ActError(f"the results hold no runs of {len(missing)} of the grid's "
                       f"{len(GRID)} activations ({', '.join(missing)}): the claims "
                       "compare them all")
    return runs


def seed_accuracies(results, epoch: int | None,
                    smoothed: bool = False) -> dict[str, dict[int, float]]:
    """Each activation's test accuracy (%) per seed after ``epoch`` (None: the final
    epoch); ``smoothed``: each run's median over the ``SMOOTHING`` epochs ending there."""
    tests: dict[str, dict[int, float]] = {}
    for r in results:
        last = epoch or r.epochs
        if smoothed and last < SMOOTHING:
            raise ActError(f"a median over the {SMOOTHING} epochs ending at epoch {last} "
                           f"needs epoch {SMOOTHING} or later")
        span = range(last - SMOOTHING + 1, last + 1) if smoothed else [epoch]
        values = [100 * figures_at(r, e)[1] for e in span]
        tests.setdefault(r.activation, {})[r.seed] = statistics.median(values)
    return tests


def accuracies(results, epoch: int | None, smoothed: bool = False) -> dict[str, list[float]]:
    """Each activation's test accuracies (%) over its seeds (:func:`seed_accuracies`)."""
    return {name: list(seeds.values())
            for name, seeds in seed_accuracies(results, epoch, smoothed).items()}


def claims(tests: dict[str, list[float]]) -> list[str]:
    """The verdicts (a)-(d) on each activation's test accuracies over its seeds."""
    m = {name: statistics.median(values) for name, values in tests.items()}

    def figure(name: str) -> str:
        seeds = tests[name]
        spread = f" [{min(seeds):.2f}, {max(seeds):.2f}]" if len(seeds) > 1 else ""
        return f"{name} {m[name]:.2f}{spread}"

    hulls = {n: v for n, v in m.items() if n.startswith(("convex_n", "affine_n"))}
    best = max(m, key=m.get)
    affine_wins = sum(m[f"affine_n({b})"] > m[f"convex_n({b})"] for b in BASE_SETS)
    best_hull = max(hulls, key=hulls.get)
    best_customary = max(CUSTOMARY, key=m.get)
    return [
        f"{'yes' if best in hulls else 'no'}: {best} {m[best]:.2f}",
        f"{affine_wins} of {len(BASE_SETS)}",
        f"{hulls[best_hull] - m[best_customary]:+.2f} ({figure(best_hull)} vs "
        f"{figure(best_customary)})",
        f"{'yes' if m['convex_n(identity(x),relu(x))'] >= m['leakyrelu(x)'] else 'no'}: "
        f"{m['convex_n(identity(x),relu(x))']:.2f} vs {m['leakyrelu(x)']:.2f}",
    ]


def leads(tests: dict[str, dict[int, float]]) -> list[str]:
    """Each hull's lead over the best customary activation (by median), seed by seed, best
    hull first: seed s of every activation starts from the same weights and sees the same
    batches, so a seed's lead compares like with like, and the median lead of each hull
    shows how much of (c)'s figure is the pick of the best of eight."""
    m = {name: statistics.median(seeds.values()) for name, seeds in tests.items()}
    rival = max(CUSTOMARY, key=m.get)
    rows = []
    for hull in (n for n in GRID if n not in CUSTOMARY):
        paired = {s: tests[hull][s] - tests[rival][s] for s in sorted(tests[hull])
                  if s in tests[rival]}  # fmt: skip
        if not paired:
            continue
        ahead = sum(lead > 0 for lead in paired.values())
        rows.append((statistics.median(paired.values()),
                     f"| {hull} | {rival} | {statistics.median(paired.values()):+.2f} | "
                     + ", ".join(f"{s}: {lead:+.2f}" for s, lead in paired.items())
                     + f" | {ahead} of {len(paired)} |"))
    return [row for _, row in sorted(rows, key=lambda pair: -pair[0])]


def windows(results, starts: list[int]) -> None:
    """The late-epoch table: per activation, the median over its seeds of each run's
    ten-epoch median validation accuracy from each start, then the seeds' training loss
    after each window."""
    runs: dict[str, list] = {}
    for r in results:
        runs.setdefault(r.activation, []).append(r)
    spans = [f"{start}–{start + SMOOTHING - 1}" for start in starts]
    print("| epochs | " + " | ".join(spans) + " |")
    print("|---|" + "---|" * len(starts))
    for name, group in runs.items():
        cells = []
        for start in starts:
            values = [window_median([100 * e.val_accuracy for e in r.history], start - 1)
                      for r in group if len(r.history) >= start - 1 + SMOOTHING]
            cells.append(f"{statistics.median(values):.2f}" if values else "")
        print(f"| {name} ({len(group)} seed{'s' * (len(group) > 1)}) | " + " | ".join(cells)
              + " |")
    print()
    for name, group in runs.items():
        losses = [" / ".join(f"{r.history[start + SMOOTHING - 2].train_loss:.3f}"
                             for r in group if len(r.history) >= start - 1 + SMOOTHING)
                  for start in starts]
        print(f"{name}: training loss after each window (per seed): " + "; ".join(losses))
    print()
    for name, group in runs.items():
        print(f"{name}: " + "; ".join(settling(r) for r in group))


def settling(run) -> str:
    """Whether a run still learns late: the epoch of its lowest training loss, and the
    median move of its validation accuracy from one epoch to the next over the second
    half of its training."""
    losses = [e.train_loss for e in run.history]
    val = [100 * e.val_accuracy for e in run.history][len(run.history) // 2 :]
    moves = [abs(b - a) for a, b in itertools.pairwise(val)]
    late = (f"validation moves {statistics.median(moves):.2f} points an epoch in the second "
            "half" if moves else "too short for a second half to move")
    return (f"seed {run.seed}: lowest training loss {min(losses):.3f} after epoch "
            f"{losses.index(min(losses)) + 1}, {losses[-1]:.3f} at the end; {late}")


def learned_coefficients(run) -> dict[str, list[float]]:
    """A hull run's trained coefficients (one per base, in the expression's order) at each
    activation site, from the parameters its result records."""
    import acthull
    from actbench.train import learned_activation

    found = {}
    for site in run.learned:
        (values,) = acthull.coefficients(learned_activation(run, site)).values()
        found[site] = values.tolist()
    return found


def monotonic_sites(run) -> dict[str, bool]:
    """Whether a hull run's learned function is monotonic on [-5, 5] at each activation
    site (claim (e): a convex hull of increasing bases must be; an affine one need not)."""
    import acthull
    from actbench.train import learned_activation

    return {site: acthull.is_monotonic(learned_activation(run, site)) for site in run.learned}


def claim_e(hulls) -> str:
    """Claim (e) over hull runs given as (activation, :func:`monotonic_sites`) pairs: at
    how many sites each kind stays monotonic."""
    counts = {"convex_n": [0, 0], "affine_n": [0, 0]}
    for activation, monotonic in hulls:
        kind = counts[activation.split("(", 1)[0]]
        kind[0] += sum(monotonic.values())
        kind[1] += len(monotonic)
    return "; ".join(f"{kind} monotonic on [-5, 5] at {mono} of {sites} sites"
                     for kind, (mono, sites) in counts.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", required=True)
    parser.add_argument("--at", type=int, nargs="*", default=[None])
    parser.add_argument("--windows", type=int, nargs="+", metavar="EPOCH")
    parser.add_argument("--smoothed", action="store_true",
                        help=f"each run's median over the {SMOOTHING} epochs ending at "
                             "each epoch, not that epoch's figure alone")
    parser.add_argument("--learned", action="store_true",
                        help="print each hull run's trained coefficients per activation "
                             "site instead (one per base, in the expression's order)")
    parser.add_argument("--leads", action="store_true",
                        help="print instead each hull's lead over the best customary "
                             "activation, seed by seed (paired: a seed fixes the initial "
                             "weights and the batches), at each epoch asked for")
    parser.add_argument("--seeds", type=int, metavar="K",
                        help="only seeds 0 to K-1 of each activation (a like-for-like "
                             "preview while the grid runs)")
    args = parser.parse_args()
    results = [r for r in load_results(args.results)
               if args.seeds is None or r.seed < args.seeds]
    if args.windows:
        windows(results, args.windows)
        return
    if args.learned:
        hulls = [(r, monotonic_sites(r)) for r in results if r.learned]
        for r, monotonic in hulls:
            print(f"{r.activation} seed {r.seed}: " + "; ".join(
                f"module {site} " + ", ".join(f"{c:.3f}" for c in values)
                + ("" if monotonic[site] else " (not monotonic)")
                for site, values in learned_coefficients(r).items()))
        print(f"(e) {claim_e((r.activation, monotonic) for r, monotonic in hulls)}")
        return
    try:
        runs = seeds_per_activation(results)
    except ActError as err:
        parser.exit(2, f"error: {err}\n")
    if len(set(runs.values())) > 1:
        print("seeds per activation differ: " + ", ".join(f"{n} {k}" for n, k in runs.items()))
    try:
        tests = {epoch: seed_accuracies(results, epoch, args.smoothed)
                 for epoch in args.at or [None]}
    except ActError as err:
        parser.exit(2, f"error: {err}\n")
    if args.leads:
        for epoch, by_seed in tests.items():
            print(f"\nafter epoch {epoch or 'final'}"
                  f"{f' (median of {SMOOTHING})' if args.smoothed else ''}:\n")
            print("| hull | against | median lead | lead per seed | seeds ahead |")
            print("|---|---|---|---|---|")
            print("\n".join(leads(by_seed)))
        return
    rows = {epoch: claims({name: list(seeds.values()) for name, seeds in by_seed.items()})
            for epoch, by_seed in tests.items()}
    print("| epochs | (a) best is a hull | (b) affine > convex | (c) best hull − best "
          "customary | (d) conv{id,ReLU} ≥ leaky ReLU |")
    print("|---|---|---|---|---|")
    for epoch, row in rows.items():
        label = f"{epoch or 'final'}{f' (median of {SMOOTHING})' if args.smoothed else ''}"
        print(f"| {label} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
