"""The candidates of a live search: one function per equivalence class of the space (the
eight published baselines added), their output features, their Fisher features (computed
by workers in resumable chunks) and the embedding the surrogate works in."""

from __future__ import annotations

from concurrent.futures import as_completed
from pathlib import Path

import numpy as np

from actsearch.config import SearchConfig
from actsearch.features import BASELINES, Features, output_features


def unique_functions(config: SearchConfig, progress: bool = False) -> list[str]:
    """One name per equivalence class of the space plus the baselines, baselines first."""
    from actcore import Space, equivalence_classes

    space = Space(*config.space, operators=config.operators)
    classes = equivalence_classes(space, progress=progress)
    names = [*BASELINES, *classes.representatives]
    return equivalence_classes(names).representatives


FISHER_CHUNK = 64  # functions per Fisher job (and per resumable store file)


def fisher_cdfs(config: SearchConfig, names: list[str], store: str) -> list[list[float]]:
    """A worker's job: Fisher CDFs of ``names`` ([] if invalid), resumable in ``store``."""
    from actbench import get_task
    from actbench.fisher import fisher_batch, model_factory
    from actfim.batch import spectra_for_activations

    task = get_task(config.task)
    inputs, targets = fisher_batch(task.dataset, config.fisher_batch, config.seed,
                                   config.data_root)
    make_model = model_factory(task.name)

    def spectra(batch: list[str]) -> list[list[float]]:
        records = spectra_for_activations(
            make_model, batch, inputs, targets, store=store, seed=config.seed, progress=False,
            normalize=config.normalize,
        )
        return [records[n].cdf or [] for n in batch]

    try:
        return spectra(names)
    except Exception:
        # A failed spectrum computation marks its function invalid; one that
        # raises (e.g. eigh not converging) must not sink the chunk: redo it one by one,
        # the finished ones coming back from the store.
        cdfs = []
        for name in names:
            try:
                cdfs += spectra([name])
            except Exception:
                cdfs.append([])
        return cdfs


def _fisher_rows(config: SearchConfig, names: list[str], out: Path, executor,
                 progress: bool) -> np.ndarray:
    """Fisher CDF rows (NaN for invalid spectra), in parallel chunks stored under ``out``."""
    from actcore.console import Progress
    from actsearch.features import fisher_matrix

    chunks = [names[i : i + FISHER_CHUNK] for i in range(0, len(names), FISHER_CHUNK)]
    futures = {
        executor.submit(fisher_cdfs, config, chunk,
                        str(out / "fisher" / f"chunk-{i:05d}.sqlite")): i
        for i, chunk in enumerate(chunks)
    }
    cdfs: list[list[list[float]]] = [[] for _ in chunks]
    with Progress(total=len(names), desc="fisher spectra", unit="fn", disable=not progress) as bar:
        for future in as_completed(futures):
            i = futures[future]
            cdfs[i] = future.result()
            bar.update(len(chunks[i]))
    return fisher_matrix([cdf for chunk in cdfs for cdf in chunk])


def prepare(config: SearchConfig, out: Path, executor,
            progress: bool = True) -> tuple[Features, np.ndarray]:
    """The functions' features and the embedding of the candidates (NaN elsewhere)."""
    from actsearch.embedding import embed

    names = unique_functions(config, progress)
    outputs = output_features(names, normalize=config.normalize)
    fisher = None
    if config.features in ("fisher", "union"):
        finite = np.isfinite(outputs).all(axis=1)
        fisher = np.full((len(names), 1), np.nan)
        if finite.any():
            rows = _fisher_rows(config, [n for n, ok in zip(names, finite) if ok], out,
                                executor, progress)
            fisher = np.full((len(names), rows.shape[1]), np.nan)
            fisher[finite] = rows
    features = Features(names, outputs, fisher)
    coords = np.full((len(names), 2), np.nan)
    coords[features.candidates] = embed(features, config.features, config.seed,
                                        cache=out / "cache")
    return features, coords
