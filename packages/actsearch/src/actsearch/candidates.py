"""The candidates of a live search and their features, phase by phase, each resumable.

1. **Classes**: the space's equivalence classes, one name each; the eight published
   baselines keep their own names. Every candidate's outputs are
   computed once, here, and serve as its output features and to place the baselines.
   A normalised search also integrates each candidate's Gaussian moments once, in
   chunks the workers compute (``moments/``).
2. **Fisher**: the Fisher features (the published CDF, or the layers' quantile functions)
   of every candidate with finite outputs, many functions per pass
   (:mod:`actfim.stacked`), in chunks that workers (local processes or Dask) compute and
   save as they finish.
3. **Embedding**: the UMAP embedding the surrogate works in (:mod:`actsearch.embedding`).

Each phase saves its result under the search's folder, so a search killed anywhere
resumes from the last finished chunk of the phase it was in.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from concurrent.futures import as_completed
from pathlib import Path

import numpy as np

from actcore.atomic import write_atomic
from actcore.console import Progress, log
from actsearch.config import SearchConfig
from actsearch.embedding import save_array
from actsearch.features import (
    Features,
    fisher_matrix,
    match_rows,
    normalizations,
    normalized,
    output_features,
)

CHUNK = 1024  # functions per worker job (Fisher spectra, moments) and per saved file


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def candidate_functions(config: SearchConfig, folder: Path | None = None,
                        progress: bool = False) -> tuple[list[str], np.ndarray]:
    """One name per equivalence class of the space, the baselines under their own names
    (a baseline outside the space added at the end), and each one's outputs (float32 rows;
    see :func:`actsearch.features.output_features`). Saved in ``folder`` when given."""
    from actcore import Space, equivalence_classes

    key = _digest("candidates", config.space, config.operators)
    names_path = folder / f"candidates-{key}.json" if folder else None
    rows_path = folder / f"candidates-{key}.npy" if folder else None
    if names_path and names_path.is_file() and rows_path.is_file():
        try:
            names, rows = json.loads(names_path.read_text()), np.load(rows_path)
            if len(names) == len(rows):
                return names, rows
        except (OSError, ValueError):
            pass  # damaged: computed again
    space = Space(*config.space, operators=config.operators)
    representatives = equivalence_classes(space, progress=progress).representatives
    rows = output_features(representatives, progress=progress)
    baselines = config.baselines
    base = output_features(baselines)
    names = list(representatives)
    missing = []
    for i, (baseline, row) in enumerate(zip(baselines, match_rows(rows, base))):
        if row is None:
            missing.append(i)
        else:  # the same outputs: only the class's name changes (no copy of the rows)
            names[row] = baseline
    if missing:
        names += [baselines[i] for i in missing]
        rows = np.concatenate([rows, base[missing]])
    if names_path is not None:
        save_array(rows_path, rows)
        write_atomic(names_path, json.dumps(names))
    return names, rows


def candidate_moments(names: list[str], folder: Path, executor,
                      progress: bool) -> np.ndarray:
    """The candidates' Gaussian moments for a normalised search (see
    :func:`actsearch.features.normalizations`; a few ms each, minutes for a large
    space), computed by the workers in saved chunks: a resumed search reads them back,
    and the Fisher workers are handed them."""
    return _chunked_rows(normalizations, names, folder, "moments", executor, progress)


def fisher_features(config: SearchConfig, names: list[str],
                    moments: np.ndarray | None = None) -> np.ndarray:
    """A worker's job: Fisher feature rows of ``names`` (``config.fisher_features``; NaN
    rows for invalid spectra); ``moments`` are their Gaussian moments in a normalised
    search, computed once by it."""
    from actbench import get_task
    from actbench.fisher import fisher_batch, model_factory
    from actcore.device import resolve_device
    from actcore.normalize import remember
    from actfim.batch import spectra_for_activations

    if moments is not None:
        remember({name: tuple(m) for name, m in zip(names, moments) if np.isfinite(m).all()})

    task = get_task(config.task)
    inputs, targets = fisher_batch(task.dataset, config.fisher_batch, config.seed,
                                   config.data_root)
    records = spectra_for_activations(
        model_factory(task.name), names, inputs, targets, seed=config.seed, progress=False,
        normalize=config.normalize, device=resolve_device(config.device),
        quantiles=config.fisher_features == "quantiles",
    )
    rows = [getattr(records[n], config.fisher_features) or [] for n in names]
    return fisher_matrix(rows) if any(rows) else np.full((len(names), 0), np.nan)


def fisher_rows(config: SearchConfig, names: list[str], folder: Path, executor,
                progress: bool, moments: np.ndarray | None = None) -> np.ndarray:
    """Fisher feature rows of ``names`` (NaN for invalid spectra), in saved chunks.
    ``moments``: the names' Gaussian moments in a normalised search, handed to the
    workers with their chunks. Rows for a large embedding are float32, the precision its
    nearest-neighbour descent works in (half the memory: 1.9 GB for the four-node space
    on a 784-pixel MLP)."""
    from actsearch.embedding import scalable

    settings = config.model_dump(include={"task", "seed", "fisher_batch", "normalize"})
    if config.fisher_features != "cdf":  # the CDF's chunks keep the names they had
        settings["fisher_features"] = config.fisher_features
    dtype = np.float32 if scalable(len(names)) else np.float64
    return _chunked_rows(fisher_features, names, folder, "fisher spectra", executor, progress,
                         settings=settings, first=(config,), per_chunk=moments,
                         stack=lambda parts: fisher_matrix([r for part in parts for r in part],
                                                           dtype))


def _chunked_rows(job: Callable[..., np.ndarray], names: list[str], folder: Path,
                  what: str, executor, progress: bool, settings: object = None,
                  first: tuple = (), per_chunk: np.ndarray | None = None,
                  stack: Callable[[list], np.ndarray] = np.concatenate) -> np.ndarray:
    """``job(*first, chunk[, per_chunk rows])`` over chunks of :data:`CHUNK`
    names, stacked by ``stack`` (a chunk of invalid spectra has no columns). Chunks
    saved in ``folder`` (named by their names and ``settings``) are read back, the
    others computed in parallel and saved here as each arrives (so workers on other
    machines need no shared disk)."""
    folder.mkdir(parents=True, exist_ok=True)
    starts = range(0, len(names), CHUNK)
    chunks = [names[i : i + CHUNK] for i in starts]
    paths = [folder / f"chunk-{i:05d}-{_digest(settings, chunk)}.npy"
             for i, chunk in enumerate(chunks)]
    results: list[np.ndarray | None] = [None] * len(chunks)
    for i, path in enumerate(paths):
        if path.is_file():
            with contextlib.suppress(OSError, ValueError):  # damaged: computed again
                results[i] = np.load(path)
    done = sum(len(chunks[i]) for i, r in enumerate(results) if r is not None)
    if done:
        log.info(f"{what}: {done:,} of {len(names):,} read from {folder}")
    with Progress(total=len(names), initial=done, desc=what, unit="fn",
                  disable=not progress) as bar:

        def collect(i: int, future) -> None:
            results[i] = future.result()
            save_array(paths[i], results[i])
            bar.update(len(chunks[i]))

        futures = {}
        for i in [i for i, r in enumerate(results) if r is None]:
            extra = () if per_chunk is None else (per_chunk[starts[i] : starts[i] + CHUNK],)
            future = executor.submit(job, *first, chunks[i], *extra)
            if future.done():  # an in-process executor: keep it before the next one
                collect(i, future)
            else:
                futures[future] = i
        for future in as_completed(futures):
            collect(futures[future], future)
    return stack(results)


def prepare(config: SearchConfig, out: Path, executor, progress: bool = True,
            before_large_embedding: Callable[[], None] | None = None,
            ) -> tuple[Features, np.ndarray]:
    """The functions' features and the embedding of the candidates (NaN elsewhere);
    each phase's wall time is logged. ``before_large_embedding`` is called before an
    embedding by nearest-neighbour descent (the search stops its idle workers there: the
    embedding is the run's memory peak)."""
    from actsearch.embedding import embed, scalable

    with _phase("classes and outputs") as note:
        names, outputs = candidate_functions(config, out / "cache", progress)
        moments = None
        if config.normalize:
            moments = candidate_moments(names, out / "moments", executor, progress)
            outputs = normalized(names, outputs, moments=moments)
        note(f"{len(names):,} candidates")
    fisher = None
    if config.features in ("fisher", "union"):
        finite = np.isfinite(outputs).all(axis=1)
        fisher = np.full((len(names), 1), np.nan)
        if finite.any():
            with _phase("fisher spectra") as note:
                rows = fisher_rows(config, [n for n, ok in zip(names, finite) if ok],
                                   out / "fisher", executor, progress,
                                   None if moments is None else moments[finite])
                fisher = np.full((len(names), rows.shape[1]), np.nan, dtype=rows.dtype)
                fisher[finite] = rows
                del rows  # 0.7 GB for the four-node space, before the embedding's peak
                note(f"{int(finite.sum()):,} functions with finite outputs")
    features = Features(names, outputs, fisher)
    coords = np.full((len(names), 2), np.nan)
    if before_large_embedding is not None and scalable(int(features.candidates.sum())):
        before_large_embedding()
    with _phase(f"{config.features} embedding") as note:
        coords[features.candidates] = embed(features, config.features, config.seed,
                                            cache=out / "cache", progress=progress)
        note(f"{int(features.candidates.sum()):,} candidates")
    return features, coords


@contextlib.contextmanager
def _phase(name: str):
    """Log how long a phase took (read back from files or computed)."""
    start = time.perf_counter()
    notes: list[str] = []
    yield notes.append
    log.info(f"{name}: {time.perf_counter() - start:.1f} s ({', '.join(notes)})")
