"""Compare activations on one task: the same seeds for each, a summary table and a plot.

Results are appended to an optional JSON-lines file as runs finish (rewritten atomically),
and runs already in it are not repeated; unfinished runs keep a checkpoint of every epoch
in a folder beside it (:func:`checkpoint_folder`), so an interrupted comparison resumes,
losing at most an epoch per run in flight. Runs go
one after another in this process, or side by side on any executor of
:mod:`actbench.executors` (local processes, Dask); the activations of one seed go in
stacks (:func:`actbench.train_many`) where stacking pays.
"""

from __future__ import annotations

import contextlib
import functools
import os
import statistics
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, as_completed
from pathlib import Path
from typing import NamedTuple

from pydantic import BaseModel, ValidationError

from actbench.activations import activation_name
from actbench.checkpoints import checkpoint_name
from actbench.curves import figures_at
from actbench.executors import SerialExecutor
from actbench.recipes import EXECUTION_FIELDS, Recipe
from actbench.results import Result
from actcore import ActError
from actcore.atomic import write_atomic
from actcore.lock import exclusive
from actcore.plot import save_figure


class Summary(BaseModel):
    """Statistics of one activation's runs."""

    activation: str
    runs: int
    failed: int
    val_median: float
    val_mean: float
    #: the seeds' sample standard deviation; None for a single run, which has no spread
    val_std: float | None
    test_median: float
    test_mean: float
    test_std: float | None
    #: 95% confidence interval of the mean test accuracy (Student's t over the seeds);
    #: None for a single run
    test_ci95: tuple[float, float] | None


def summarise(results: Sequence[Result], epoch: int | None = None) -> list[Summary]:
    """One :class:`Summary` per activation, in order of first appearance, of the runs'
    final figures or, given ``epoch``, of their figures after that epoch
    (:func:`actbench.curves.figures_at`)."""
    groups: dict[str, list[tuple[float, float, bool]]] = {}
    for result in results:
        groups.setdefault(result.activation, []).append(figures_at(result, epoch))
    summaries = []
    for activation, runs in groups.items():
        val = [v for v, _, _ in runs]
        test = [t for _, t, _ in runs]
        summaries.append(Summary(
            activation=activation, runs=len(runs), failed=sum(f for _, _, f in runs),
            val_median=statistics.median(val), val_mean=statistics.fmean(val),
            val_std=statistics.stdev(val) if len(val) > 1 else None,
            test_median=statistics.median(test), test_mean=statistics.fmean(test),
            test_std=statistics.stdev(test) if len(test) > 1 else None,
            test_ci95=_ci95(test) if len(test) > 1 else None,
        ))  # fmt: skip
    return summaries


def _ci95(values: Sequence[float]) -> tuple[float, float]:
    """Student's t 95% interval of the mean of two or more values, within the
    accuracies' range [0, 1]."""
    from scipy.stats import t

    mean = statistics.fmean(values)
    half = t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return max(0.0, mean - half), min(1.0, mean + half)


def table(summaries: Sequence[Summary], markdown: bool = False) -> str:
    """The summaries as a text (or Markdown) table; accuracies in percent."""
    head = ["activation", "runs", "failed", "val median", "val mean ± std", "test median",
            "test mean ± std", "test 95% CI"]  # fmt: skip
    rows = [
        [s.activation, str(s.runs), str(s.failed), f"{100 * s.val_median:.2f}",
         _spread(s.val_mean, s.val_std), f"{100 * s.test_median:.2f}",
         _spread(s.test_mean, s.test_std),
         f"{100 * s.test_ci95[0]:.2f}–{100 * s.test_ci95[1]:.2f}" if s.test_ci95 else "–"]
        for s in summaries
    ]  # fmt: skip
    if markdown:
        lines = [head, ["---"] + ["---:"] * (len(head) - 1), *rows]
        return "\n".join("| " + " | ".join(row) + " |" for row in lines)
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    fmt = [f"{{:<{widths[0]}}}", *(f"{{:>{w}}}" for w in widths[1:])]
    return "\n".join(
        "  ".join(f.format(cell) for f, cell in zip(fmt, row)) for row in [head, *rows]
    )


def _spread(mean: float, std: float | None) -> str:
    """A mean ± std cell in percent; the mean alone for a single run."""
    return f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if std is not None else "")


def plot(results: Sequence[Result], path: str | os.PathLike[str], title: str = "") -> None:
    """Box plots of validation and test accuracy per activation, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r.activation for r in results))
    fig, axes = plt.subplots(1, 2, figsize=(max(6.0, 0.9 * len(names) + 3), 5), sharey=True)
    for ax, split in zip(axes, ("val", "test")):
        data = [[100 * getattr(r, f"{split}_accuracy") for r in results if r.activation == n]
                for n in names]  # fmt: skip
        ax.boxplot(data, showmeans=True, showfliers=False)  # every run is drawn below
        for i, values in enumerate(data, start=1):
            ax.scatter([i] * len(values), values, s=10, alpha=0.6, color="k", zorder=3)
        ax.set_xticks(range(1, len(names) + 1), names, rotation=60, ha="right", fontsize=8)
        ax.set_title(f"{'validation' if split == 'val' else 'test'} accuracy")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def plot_learned(results: Sequence[Result], path: str | os.PathLike[str], seed: int = 0,
                 title: str = "") -> None:
    """The learned activation functions of seed ``seed``'s runs, one panel per activation
    site (hidden layer), as in the hull paper's Fig. 3: affine hulls solid, convex ones
    dashed, one colour per base set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from actbench.train import learned_activation

    runs = [r for r in results if r.seed == seed and r.learned and r.status == "ok"]
    if not runs:
        raise ActError(f"no run of seed {seed} has a learned activation to draw")
    sites = list(runs[0].learned)
    bases = list(dict.fromkeys(_bases(r.activation) for r in runs))
    x = torch.linspace(-3, 3, 241)
    cols = min(3, len(sites))
    rows = -(-len(sites) // cols)
    fig, grid = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows + 0.8), squeeze=False)
    axes = grid.flatten()
    for ax in axes[len(sites):]:
        ax.set_visible(False)
    for number, (ax, site) in enumerate(zip(axes, sites, strict=False), start=1):
        for run in runs:
            with torch.no_grad():
                y = learned_activation(run, site)(x)
            kind = run.activation.split("(", 1)[0]
            ax.plot(x, y, color=f"C{bases.index(_bases(run.activation))}",
                    linestyle="--" if kind == "convex_n" else "-", linewidth=1.4,
                    label=f"{'conv' if kind == 'convex_n' else 'aff'}{{{_bases(run.activation)}}}")
        ax.set_title(f"hidden layer {number} (module {site})", fontsize=10)
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.axvline(0, color="grey", linewidth=0.5)
        ax.set_xlabel("x")
        ax.grid(alpha=0.3)
    for row in grid:
        row[0].set_ylabel("learned f(x)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8,
               frameon=False)
    fig.suptitle(title or f"learned activations, seed {seed}: affine solid, convex dashed")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    save_figure(fig, path, dpi=120)


def _bases(activation: str) -> str:
    """``convex_n(identity(x),relu(x))`` -> ``id, relu``."""
    inner = activation.split("(", 1)[1].rsplit(")", 1)[0]
    return ", ".join(b.removesuffix("(x)").replace("identity", "id") for b in inner.split(","))


def load_results(path: str | os.PathLike[str]) -> list[Result]:
    """Results saved by :func:`save_results` (a missing file is an empty list)."""
    path = Path(path)
    if not path.exists():
        return []
    results = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            results.append(Result.model_validate_json(line))
        except ValidationError as err:
            raise ActError(f"{path}:{number}: not a result record: {err}") from None
    return results


def save_results(results: Sequence[Result], path: str | os.PathLike[str]) -> None:
    """Write results as JSON lines, atomically."""
    write_atomic(path, "".join(r.model_dump_json() + "\n" for r in results))


def _finished(executor: Executor, jobs: list[Callable[[], list[Result]]]
              ) -> Iterator[tuple[int, list[Result]]]:
    """Each job's number and results as it finishes; in process, one job at a time (so
    each is saved before the next starts)."""
    if isinstance(executor, SerialExecutor):
        for number, job in enumerate(jobs):
            yield number, job()
        return
    futures = {executor.submit(job): number for number, job in enumerate(jobs)}
    for future in as_completed(futures):
        yield futures[future], future.result()


def checkpoint_folder(results_path: str | os.PathLike[str]) -> Path:
    """Where a comparison saved in ``results_path`` keeps its unfinished runs' checkpoints:
    ``runs.jsonl`` -> ``runs.checkpoints/``."""
    path = Path(results_path)
    return path.with_name(path.stem + ".checkpoints")


def _forget(folder: Path, task: str, recipe: Recipe, names: Sequence[str], seed: int) -> None:
    """Remove the checkpoints of a job of ``names`` whose results are saved: its stack's,
    and those of members retrained alone."""
    for run in [names, *([n] for n in names if len(names) > 1)]:
        (folder / checkpoint_name(task, recipe, run, seed)).unlink(missing_ok=True)


def _check_recipe(results: Sequence[Result], task: str, recipe: Recipe,
                  path: str | os.PathLike[str] | None) -> None:
    """A saved run of ``task`` is reusable only if it trained with ``recipe`` (execution
    settings aside). Runs saved before act recorded recipes are checked by their epochs
    (a failed run stops early, at its epoch)."""
    wanted = recipe.model_dump(mode="json", exclude=set(EXECUTION_FIELDS))
    for r in results:
        if r.task != task:
            continue
        if r.recipe is not None:
            # a field added to Recipe since the run was saved: the run had its default
            saved = {k: Recipe.model_fields[k].default for k in wanted} | r.recipe
            differ = {k: v for k, v in wanted.items() if saved[k] != v}
            if differ:
                field = next(iter(differ))
                raise ActError(
                    f"{path} holds {task} runs trained with {field}={saved[field]!r} "
                    f"({r.activation}, seed {r.seed}), not the {field}={differ[field]!r} "
                    f"asked for: use the same settings to continue them, or another "
                    "--results file")
        elif r.epochs > recipe.epochs or (r.status == "ok" and r.epochs != recipe.epochs):
            raise ActError(
                f"{path} holds {task} runs of {r.epochs} epochs ({r.activation}, seed "
                f"{r.seed}), not the {recipe.epochs} asked for: pass --epochs {r.epochs} to "
                "continue them, or another --results file"
            )


def run_comparison(
    task: str,
    activations: Sequence[str],
    seeds: Sequence[int],
    train: Callable[[list[str], int], list[Result]],
    results_path: str | os.PathLike[str] | None = None,
    on_result: Callable[[Result], None] | None = None,
    executor: Executor | None = None,
    stack: int = 1,
    recipe: Recipe | None = None,
    checkpoints: str | os.PathLike[str] | None = None,
    on_saved: Callable[[list[Result]], None] | None = None,
) -> list[Result]:
    """Train every activation on every seed (skipping runs already saved); return the
    results in the order activation by activation, seed by seed.

    ``train(activations, seed)`` trains a job of up to ``stack`` activations of one seed
    (:func:`actbench.train_many`); on an executor other than the default in-process one
    it must pickle (a module-level function or a ``functools.partial`` of one).
    Activations are canonicalised (``relu`` is ``relu(x)``) and parsed before anything
    is trained. Given the runs' ``recipe``, saved runs of ``task`` trained with another
    (another epoch count, learning rate, …) are refused rather than reused; given also
    ``checkpoints``, the folder where ``train`` checkpoints its runs, a job's checkpoints
    are removed once its results are saved.

    ``on_saved`` is called once, before any training, with the wanted runs already saved;
    ``on_result`` with each new run as it finishes (a progress bar's rate then counts
    only the runs trained now).

    While it trains, it holds the lock of ``results_path`` (:func:`actcore.lock.exclusive`):
    a second comparison that would train into the same file is refused, naming the first;
    one with nothing left to train only reads it, so a running grid's table can be read.
    """
    activations = [activation_name(a) for a in activations]
    wanted = [(task, a, s) for a in activations for s in seeds]
    plan = _plan(task, activations, seeds, stack, results_path, recipe)
    training = results_path is not None and bool(plan.chunks)
    with exclusive(results_path, "the results file") if training else contextlib.nullcontext():
        if training:  # read again under the lock: runs saved by a comparison just ended
            plan = _plan(task, activations, seeds, stack, results_path, recipe)
        results, have, chunks = plan
        if on_saved is not None:
            on_saved([have[key] for key in wanted if key in have])
        jobs = [functools.partial(train, names, seed) for names, seed in chunks]
        for number, done in _finished(executor or SerialExecutor(), jobs):
            for result in done:
                results.append(result)
                have[(result.task, result.activation, result.seed)] = result
            if results_path is not None:
                save_results(results, results_path)
            if checkpoints is not None and recipe is not None:
                _forget(Path(checkpoints), task, recipe, *chunks[number])
            for result in done:
                if on_result is not None:
                    on_result(result)
    if checkpoints is not None and Path(checkpoints).is_dir() and \
            not any(Path(checkpoints).iterdir()):
        Path(checkpoints).rmdir()
    return [have[key] for key in wanted]


class _Plan(NamedTuple):
    results: list[Result]  # the file's runs (of any task and activation)
    have: dict[tuple[str, str, int], Result]
    chunks: list[tuple[list[str], int]]  # jobs still to train: activations and seed


def _plan(task: str, activations: list[str], seeds: Sequence[int], stack: int,
          results_path: str | os.PathLike[str] | None, recipe: Recipe | None) -> _Plan:
    """The runs saved so far and the jobs left, seed by seed, so that a comparison stopped
    early has every activation's first seeds."""
    results = load_results(results_path) if results_path is not None else []
    if recipe is not None:
        _check_recipe(results, task, recipe, results_path)
    have = {(r.task, r.activation, r.seed): r for r in results}
    chunks = []
    for seed in seeds:
        todo = list(dict.fromkeys(a for a in activations if (task, a, seed) not in have))
        chunks += [(todo[i : i + stack], seed) for i in range(0, len(todo), stack)]
    return _Plan(results, have, chunks)
