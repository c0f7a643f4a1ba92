"""``act bench``: list models, datasets and tasks; train; compare activations."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from typing import Any

from actbench.activations import activation_name
from actbench.build_command import add_command as add_build
from actbench.compare import (
    checkpoint_folder,
    plot,
    plot_learned,
    run_comparison,
    summarise,
    table,
)
from actbench.curves import plot_curves
from actbench.executors import make_executor, worker_device
from actbench.hookspecs import DATASETS, MODELS, TASKS
from actbench.models import parameter_count
from actbench.options import add_set, add_stack
from actbench.recipes import parse_overrides
from actbench.results import Result
from actbench.stacked_training import members_per_stack, train_many
from actbench.train import recipe_for, train
from actcore import ActError
from actcore.atomic import make_parent
from actcore.cli import add_device, add_group, add_normalize, add_output, output_path
from actcore.console import Progress, log
from actcore.plot import figure_path
from actcore.plugins import registry


def add_bench(subparsers: argparse._SubParsersAction) -> None:
    commands = add_group(subparsers, "bench", "datasets, models, tasks and training")

    models = commands.add_parser("models", help="list models and their parameter counts")
    models.add_argument("--dataset", default="cifar10",
                        help="count parameters for this dataset's shape (default cifar10)")
    models.set_defaults(run=run_models)

    datasets = commands.add_parser("datasets", help="list datasets and where their files are")
    datasets.add_argument("--data-root", help="data folder (default $ACT_DATA)")
    datasets.set_defaults(run=run_datasets)
    commands.add_parser("tasks", help="list tasks and recipes").set_defaults(run=run_tasks)
    commands.add_parser("tables", help="list the benchmark tables packages register, with "
                        "their cards").set_defaults(run=run_tables)

    one = commands.add_parser("train", help="train a task with one activation")
    _common(one)
    one.add_argument("--activation", "-a", required=True, help="expression, e.g. relu(x)")
    one.add_argument("--json", action="store_true", help="print the results as JSON")
    one.add_argument("--checkpoint", metavar="FILE",
                     help="save state every epoch here and resume from it (one seed)")
    one.set_defaults(run=run_train)

    many = commands.add_parser("compare", help="compare activations on the same seeds")
    _common(many)
    many.add_argument("--activation", "-a", action="append", required=True,
                      help="an activation expression (repeat for each)")
    add_output(many, None, "box plot PNG", figure=True)
    many.add_argument("--results", metavar="FILE.jsonl",
                      help="save runs here as they finish; runs already there are reused, and "
                           "unfinished runs checkpoint every epoch in FILE.checkpoints/ and "
                           "resume from it")
    many.add_argument("--markdown", action="store_true", help="print a Markdown table")
    many.add_argument("--at-epoch", type=int, metavar="N",
                      help="print the table as it stood after epoch N (from the runs' "
                           "learning curves)")
    many.add_argument("--curves", type=figure_path, metavar="FILE.png",
                      help="draw each activation's median validation curve over seeds, "
                           "with the seeds' range, against ReLU's, marking where one takes "
                           "a lead it keeps for a tenth of the epochs")
    many.add_argument("--learned-plot", type=figure_path, metavar="FILE.png",
                      help="draw seed 0's learned activations per layer (hulls: affine solid, "
                           "convex dashed)")
    many.add_argument("--workers", type=int, default=0,
                      help="runs side by side in worker processes of one torch thread each "
                           "(default 0: one after another in this process)")
    many.add_argument("--scheduler", metavar="ADDRESS",
                      help="run on a Dask cluster (tcp://host:8786, or 'local' to start one)")
    add_stack(many)
    many.set_defaults(run=run_compare)

    add_build(commands)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", "-t", required=True, help="task name (act bench tasks)")
    parser.add_argument("--seeds", type=int, default=1, help="train seeds 0..N-1")
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs")
    add_set(parser)
    add_normalize(parser)
    parser.add_argument("--data-root", help="data folder (default $ACT_DATA)")
    parser.add_argument("--download", action="store_true", help="download missing data")
    add_device(parser)


#: settings of a run that are not recipe fields
RUN_SETTINGS = ("root", "download", "device")


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    if args.seeds < 1:
        raise ActError(f"--seeds must be at least 1, got {args.seeds}")
    overrides = parse_overrides(args.set, args.epochs, args.normalize)
    registry(TASKS).get(args.task)  # bad input fails before anything is trained
    for activation in args.activation if isinstance(args.activation, list) else [args.activation]:
        activation_name(activation)
    return dict(zip(RUN_SETTINGS, (args.data_root, args.download, args.device)), **overrides)


def _train_job(task: str, activations: list[str], seed: int, **settings: Any) -> list[Result]:
    """One job of :func:`run_comparison` (module level: worker processes unpickle it)."""
    return train_many(task, activations, seed, **settings)


def run_models(args: argparse.Namespace) -> int:
    source = registry(DATASETS).get(args.dataset)
    print(f"parameters for {source.name} {source.input_shape}, {source.num_classes} classes")
    for model in registry(MODELS):
        try:
            net = model.build("relu", source.input_shape, source.num_classes)
        except ActError as err:
            print(f"{model.name:<11} {'n/a':>12}  {model.description} ({err})")
            continue
        print(f"{model.name:<11} {parameter_count(net):>12,}  {model.description}")
    return 0


def run_datasets(args: argparse.Namespace) -> int:
    for source in registry(DATASETS):
        shape = "x".join(map(str, source.input_shape))
        try:
            where = f"found: {source.where(args.data_root)}"
        except ActError as err:
            where = f"missing: {err}"
        print(f"{source.name:<14} {shape:>10} {source.num_classes:>5} classes  "
              f"{source.description}\n{'':<16}{where}")  # fmt: skip
    return 0


def run_tasks(args: argparse.Namespace) -> int:
    for task in registry(TASKS):
        r = task.recipe
        print(f"{task.name:<24} {task.dataset:<14} {task.model:<11} {r.optimizer} lr {r.lr:g}, "
              f"{r.epochs} epochs, batch {r.batch_size}  {task.description}")  # fmt: skip
    return 0


def run_tables(args: argparse.Namespace) -> int:
    from actbench.card import card_path, read_card
    from actbench.hookspecs import TABLES

    for named in registry(TABLES):
        print(f"{named.name:<28} {getattr(named, 'description', '')}")
        if unavailable := getattr(named, "unavailable", ""):  # a plugin's table may lack it
            print(f"{'':<30}not available: {unavailable}")
        elif (card := card_path(named.path)).is_file():
            card = read_card(card)
            print(f"{'':<30}{card.rows} rows of {card.classes} classes, task {card.task}, "
                  f"seeds {len(card.seeds)}, {card.failed} failed; {named.path}")
        else:
            print(f"{'':<30}{named.path}")
    return 0


def _line(result: Result) -> str:
    status = "ok" if result.status == "ok" else f"FAILED ({result.reason})"
    return (
        f"{result.activation} seed {result.seed}: val {100 * result.val_accuracy:.2f}%  "
        f"test {100 * result.test_accuracy:.2f}%  {result.runtime_s:.1f}s  {status}"
    )


def run_train(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.checkpoint and args.seeds != 1:
        raise ActError("--checkpoint works with one seed at a time")
    if args.checkpoint:
        make_parent(args.checkpoint)  # a folder that cannot be made fails before the training
    results = []
    bar = Progress(range(args.seeds), desc=args.task, unit="run", file=sys.stderr)
    for seed in bar:
        result = train(args.task, args.activation, seed, checkpoint=args.checkpoint,
                       progress=True, **settings)  # fmt: skip
        results.append(result)
        if not args.json:
            bar.write(_line(result), file=sys.stdout)
    bar.close()
    if args.json:
        print(json.dumps([r.model_dump() for r in results], indent=2))
    elif len(results) > 1:
        print(table(summarise(results)))
    return 0


def run_compare(args: argparse.Namespace) -> int:
    settings = _settings(args)
    out = output_path(args)  # every output's folder made, or refused, before any training
    for path in (args.results, args.curves, args.learned_plot):
        if path:
            make_parent(path)
    total = len(args.activation) * args.seeds
    in_process = args.workers == 0 and args.scheduler is None
    device = worker_device(args.device, args.scheduler)
    stack = members_per_stack(args.task, device, args.stack)
    recipe = recipe_for(registry(TASKS).get(args.task),
                        {k: v for k, v in settings.items() if k not in RUN_SETTINGS})
    if args.at_epoch is not None and not 1 <= args.at_epoch <= recipe.epochs:
        raise ActError(f"--at-epoch must be from 1 to the runs' {recipe.epochs} epochs, "
                       f"got {args.at_epoch}")
    checkpoints = checkpoint_folder(args.results) if args.results else None
    job = functools.partial(_train_job, args.task, stack=stack, progress=in_process,
                            checkpoint=checkpoints, **settings)  # fmt: skip

    bar: Progress | None = None  # begun at the saved runs' count: its rate is the new ones'

    def saved(results: list[Result]) -> None:
        nonlocal bar
        bar = Progress(total=total, initial=len(results), desc=args.task, unit="run",
                       file=sys.stderr)  # fmt: skip
        for result in results if not in_process else []:
            bar.write(f"{_line(result)} (saved earlier)", file=sys.stderr)

    def done(result: Result) -> None:
        assert bar is not None  # on_saved comes first
        bar.update()
        bar.set_postfix_str(f"{result.activation} seed {result.seed}")
        if not in_process:
            bar.write(_line(result), file=sys.stderr)

    with make_executor(args.workers, args.scheduler, device) as executor:
        results = run_comparison(args.task, args.activation, range(args.seeds), job,
                                 args.results, done, executor, stack, recipe, checkpoints,
                                 on_saved=saved)  # fmt: skip
    if bar is not None:
        bar.close()
    when = f" after epoch {args.at_epoch}" if args.at_epoch is not None else ""
    print(f"{args.task}: {args.seeds} seed(s) per activation, accuracies in %{when}")
    print(table(summarise(results, args.at_epoch), markdown=args.markdown))
    seeds = "one seed" if args.seeds == 1 else f"{args.seeds} seeds"
    if args.curves:
        plot_curves(results, args.curves, title=f"{args.task}: validation accuracy by epoch, "
                    + (f"median of {seeds} (band: min–max)" if args.seeds > 1 else seeds))
        log.info(f"learning curves drawn in {args.curves}")
    if out is not None:
        plot(results, out, title=f"{args.task}, {seeds}")
        log.info(f"plot written to {out}")
    if args.learned_plot:
        plot_learned(results, args.learned_plot,
                     title=f"{args.task}: learned activations per layer, seed 0 (affine solid, "
                           "convex dashed)")
        log.info(f"learned activations drawn in {args.learned_plot}")
    return 0
