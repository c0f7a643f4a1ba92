"""``act search``: replay searches on benchmark tables, plot embeddings, search live."""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from actcore.cli import (
    add_device,
    add_group,
    add_normalize,
    add_operators,
    add_output,
    int_at_least,
    output_path,
)
from actcore.console import log
from actcore.errors import ActError
from actsearch.features import BASELINES, FEATURE_SETS, baselines_of
from actsearch.report import write_csv


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    commands = add_group(subparsers, "search", "surrogate search for activation functions")

    p = commands.add_parser("replay", help="replay search algorithms on a benchmark table")
    _table_args(p)
    p.add_argument("--regressor", action="append", default=None, metavar="NAME",
                   help="surrogate regressor (repeatable; default knr)")
    p.add_argument("--features", action="append", default=None, metavar="SET",
                   help=f"feature set {'/'.join(FEATURE_SETS)} (repeatable; default union, "
                   "or outputs for a table without Fisher features)")
    p.add_argument("--strategy", default="surrogate", help="search strategy (default surrogate)")
    p.add_argument("--no-random", action="store_true", help="leave out the random baseline")
    p.add_argument("--trials", type=int_at_least(1), default=100)
    p.add_argument("--budget", type=int_at_least(1), default=100, help="evaluations per trial")
    p.add_argument("--embeddings", type=int_at_least(1), default=EMBEDDINGS,
                   help="UMAP embeddings per feature set (seeds SEED, SEED+1, ...), taken by "
                   f"the trials in turn (default {EMBEDDINGS})")
    p.add_argument("--jobs", type=int_at_least(1), default=None,
                   help="processes (default: all cores)")
    add_output(p, "search-replay-{table}", "report folder")
    p.set_defaults(run=run_replay)

    p = commands.add_parser("embed", help="plot a table's 2-D embeddings by accuracy")
    _table_args(p)
    add_output(p, "search-embed-{table}.png", "PNG file", figure=True)
    p.set_defaults(run=run_embed)

    p = commands.add_parser("regressors", help="list the registered regressors and strategies")
    p.set_defaults(run=run_list)

    add_run(commands)


def _table_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--table", required=True, help="table file (.json/.json.gz) or name")
    p.add_argument("--seed", type=int_at_least(0), default=0)
    p.add_argument("--cache", type=Path, default=None,
                   help="embedding cache folder (default $ACT_CACHE_DIR or ~/.cache/act)")


MIN_FUNCTIONS = 10
EMBEDDINGS = 5  # a replay's figures should not rest on how one seed laid the points out


def _load(args: argparse.Namespace):
    from actbench.tables import load_table
    from actsearch.features import table_features

    table = load_table(args.table)
    if len(table) < MIN_FUNCTIONS:
        raise ActError(
            f"{args.table}: {len(table)} function(s); searching a table needs at least "
            f"{MIN_FUNCTIONS} (ReLU and 7 random functions start every search)"
        )
    if not any(math.isfinite(row.val_accuracy) for row in table.records.values()):
        raise ActError(f"{args.table}: no row has a finite 'Validation Accuracy'")
    return table, table_features(table)


def run_replay(args: argparse.Namespace) -> int:
    from actsearch import plot, replay, replay_summary

    regressors = args.regressor or ["knr"]
    table, features = _load(args)
    feature_sets = args.features or ["union" if features.fisher is not None else "outputs"]
    algorithms = [replay.Algorithm(args.strategy, r, fs) for fs in feature_sets
                  for r in regressors]  # checks every name
    for fs in feature_sets:
        features.require(fs)
    if not args.no_random:
        algorithms.append(replay.Algorithm("random", regressors[0], feature_sets[0]))
    out = output_path(args, table=Path(str(args.table)).name.split(".")[0])
    if out.exists() and not out.is_dir():
        raise ActError(f"--out {str(out)!r} is a file; the replay report needs a folder")
    cache = args.cache or True
    problems = {fs: replay.prepare(table, features, fs, args.seed, cache, args.embeddings)
                for fs in feature_sets}
    results = replay.replay(problems, algorithms, args.trials, args.budget, seed=args.seed,
                            jobs=args.jobs, checkpoint=out / "trials")
    problem = problems[feature_sets[0]]
    write_csv(out / "replay.csv", ["algorithm", "trial", "embedding", "evaluation", "function",
                                    "accuracy", "best_so_far", "spearman"],
               ([a.label, i, replay.layout_of(problem, i), j + 1, problem.names[row],
                 f"{problem.accuracy[row]:.6g}", f"{t.best[j]:.6g}",
                 "" if np.isnan(t.spearman[j]) else f"{t.spearman[j]:.4f}"]
                for a, trials in results.items() for i, t in enumerate(trials)
                for j, row in enumerate(t.rows)))
    summaries = [replay_summary.summarise(problem, a, trials) for a, trials in results.items()]
    fields = list(replay_summary.Summary.model_fields)
    write_csv(out / "summary.csv", fields,
               ([getattr(s, f) for f in fields] for s in summaries))
    curves = {a.label: replay_summary.best_curves(trials) for a, trials in results.items()}
    spearman = {a.label: replay_summary.spearman_curves(trials) for a, trials in results.items()}
    panels = {fs: [a.label for a in results if a.features == fs or a.strategy == "random"]
              for fs in feature_sets} if len(feature_sets) > 1 else None
    plot.plot_replay(curves, spearman, out / "replay.png", problem.start_accuracy,
                      float(problem.accuracy.max()),
                      f"{args.table}: {args.trials} trials on {args.embeddings} "
                      f"embedding{'s' if args.embeddings > 1 else ''} per feature set", panels)
    _print_summary(summaries, problem)
    log.info(f"wrote {out}/replay.csv, summary.csv, replay.png")
    return 0


def _print_summary(summaries: Sequence, problem) -> None:
    print(f"ReLU {problem.start_accuracy:.4f}, table best {problem.accuracy.max():.4f}; "
          f"{len(problem.layouts)} embedding(s) per feature set; evaluations (fraction of "
          "trials reaching it):")
    width = max(len(s.algorithm) for s in summaries)
    print(f"{'algorithm':<{width}}  final best  beat ReLU      top 1%         best"
          "           Spearman")
    for s in summaries:
        print(f"{s.algorithm:<{width}}  {s.final_best_mean:10.4f}  "
              f"{s.evals_to_beat_relu:5.1f} ({s.beat_relu_fraction:4.0%})  "
              f"{s.evals_to_top1pct:5.1f} ({s.top1pct_fraction:4.0%})  "
              f"{s.evals_to_best:5.1f} ({s.best_fraction:4.0%})  {s.spearman_mean:8.3f}")
    print("Spearman: each step's surrogate, fitted to the functions its own search chose, "
          "ranking the unevaluated ones (the paper's figure); it measures the search, not "
          "the features' signal on a random sample (the docs' Fisher-signal experiment does).")


def run_embed(args: argparse.Namespace) -> int:
    from actsearch import plot
    from actsearch.embedding import embed

    table, features = _load(args)
    out = output_path(args, table=Path(str(args.table)).name.split(".")[0])  # before the work
    mask = features.candidates
    names = np.array(table.names())[mask]
    accuracy = np.nan_to_num([table.records[n].val_accuracy for n in names], nan=table.chance)
    failed = np.array([table.failed(n) for n in names], dtype=bool)
    panels = {fs: embed(features, fs, seed=args.seed, cache=args.cache or True)
              for fs in FEATURE_SETS if fs == "outputs" or features.fisher is not None}
    index = np.cumsum(mask) - 1  # row -> candidate index
    labels = {n: int(index[r]) for n, r in features.rows_like(BASELINES).items()
              if mask[r]}
    plot.plot_embeddings(panels, accuracy, failed, labels, out,
                         f"{args.table}: {int(mask.sum())} candidates")
    log.info(f"wrote {out}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from actcore.plugins import registry
    from actsearch.hookspecs import REGRESSORS, STRATEGIES

    for kind, heading in ((REGRESSORS, "regressors"), (STRATEGIES, "strategies")):
        print(f"{heading}:")
        for entry in registry(kind).entries():
            print(f"  {entry.name:<16} {entry.item.description}  [{entry.plugin}]")
    return 0


def add_run(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("run", help="search a task live: train the surrogate's picks")
    p.add_argument("--task", required=True, help="actbench task, e.g. mlp-digits")
    p.add_argument("--space", action="append", required=True,
                   help="schema, e.g. 'binary(unary(x),unary(x))' (repeatable: union)")
    add_operators(p)
    p.add_argument("--budget", type=int, default=50, help="evaluations in total")
    p.add_argument("--workers", type=int, default=None,
                   help="parallel trainings (default: all cores, or one per GPU for work on "
                        "CUDA; 0: in this process)")
    p.add_argument("--scheduler", default=None,
                   help="Dask scheduler address ('local' starts a local cluster)")
    from actbench.options import add_set, add_stack

    add_stack(p, "where it pays, with at most 8 trainings in flight, as the paper's 8 "
                 "parallel workers")  # K suggestions per free worker, trained side by side
    p.add_argument("--regressor", default="knr")
    p.add_argument("--strategy", default="surrogate")
    p.add_argument("--features", default="union")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="override the task's epochs")
    add_set(p)
    add_normalize(p)
    p.add_argument("--fisher-batch", type=int, default=32,
                   help="training examples in the Fisher batch (default 32; on a "
                        "convolutional network 128 carried more signal, as tables use)")
    p.add_argument("--fisher-features", default="cdf", metavar="KIND",
                   help="the Fisher features: 'cdf', the published binned CDF of each "
                        "layer's log-eigenvalues (default), or 'quantiles', each layer's "
                        "quantile function (no bins to choose; on a convolutional table "
                        "they carried more signal through the embedding and did not depend "
                        "on the batch)")
    p.add_argument("--data-root", default=None)
    add_device(p)  # on a Dask cluster, default: each worker's own
    p.add_argument("--baselines", default="published", metavar="SET",
                   help="the functions trained first: 'published' (ELU, ReLU, SELU, sigmoid, "
                        "Softplus, Softsign, Swish, tanh), 'extended' (those and ELiSH, GELU, "
                        "HardSigmoid, Leaky ReLU, Mish, as for CoAtNet) or f1,f2,...")
    p.add_argument("--in-order", action="store_true",
                   help="reproducible: use each training's result in the order it was "
                        "submitted, so identical runs pick identical functions (default: as "
                        "soon as it finishes, which keeps every worker busy but depends on "
                        "which worker is faster)")
    add_output(p, "search-run-{task}", "report folder (and study file)")
    p.set_defaults(run=run_live)


def run_live(args: argparse.Namespace) -> int:
    from actbench.recipes import parse_overrides
    from actsearch.config import SearchConfig
    from actsearch.live import run_search
    from actsearch.report import top_lines, write_report

    if args.budget < 1:
        raise ActError("--budget must be at least 1")
    config = SearchConfig(
        task=args.task, space=args.space, budget=args.budget, regressor=args.regressor,
        strategy=args.strategy, features=args.features, seed=args.seed, epochs=args.epochs,
        overrides=parse_overrides(args.set),
        fisher_batch=args.fisher_batch, fisher_features=args.fisher_features,
        data_root=args.data_root, device=args.device,
        in_order=args.in_order,
        normalize=args.normalize, operators=args.operators,
        baselines=baselines_of(args.baselines),
    )
    out = output_path(args, task=config.task)
    start = time.perf_counter()
    evaluations = run_search(config, out, args.workers, args.scheduler, stack=args.stack)
    fisher = ", Fisher quantiles" if config.fisher_features == "quantiles" and \
        config.features != "outputs" else ""
    write_report(evaluations, out, f"{config.task}, {config.strategy} {config.regressor} "
                 f"({config.features}{fisher})", baselines=config.baselines)
    print(f"{len(evaluations)} evaluations in {out}/study.sqlite "
          f"({time.perf_counter() - start:.0f} s this run); top functions:")
    print("\n".join(top_lines(evaluations)))
    log.info(f"wrote {out}/leaderboard.csv, best_so_far.png, top_functions.png")
    return 0
