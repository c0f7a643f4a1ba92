"""2-D UMAP embeddings of the candidates' features, cached on disk.

Outputs use the Euclidean metric, Fisher CDFs the Manhattan metric (a 1-Wasserstein
distance on CDFs) with 3 neighbours, and ``union`` embeds the union of the two fuzzy
graphs (umap-learn's ``model_a + model_b``, with a seeded layout). Distances are computed once with
scikit-learn and passed as ``metric="precomputed"``: below 4,096 rows umap-learn would
otherwise compute all pairs through a slow Python-called metric.

Embeddings never see accuracies, so one embedding per candidate set, feature set and
seed serves every suggestion of a search and every replay trial on that seed; it is
cached under a key made from the features, the feature set and the seed.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from actcore.atomic import atomic_path, make_parent
from actcore.cache import cache_root
from actcore.console import Progress
from actsearch.features import Features

CACHE_VERSION = "2"  # 2: union layouts follow the seed (see UNION_STATE)
NEIGHBOURS = {"outputs": 15, "fisher": 3}
METRICS = {"outputs": "euclidean", "fisher": "manhattan"}
#: Up to this many candidates the exact distance matrix (n^2 float64: 200 MB here) is
#: cheaper than approximate neighbours; above it, umap-learn's nearest-neighbour descent
#: finds the neighbours without any n x n matrix (the four-node space has ~400,000).
EXACT_UP_TO = 5_000
FOREST_TREES = 8  # random-projection trees that start NN-descent (see _neighbours)
#: umap-learn lays out the union of two models from ``RandomState(42)`` whatever their
#: seeds (``UMAP.__add__``), so every seed gave one union layout; act draws it from
#: ``UNION_STATE + seed``: seed 0 is umap-learn's own union, other seeds differ.
UNION_STATE = 42


#: what a fitted umap-learn model keeps to transform new points: the union of two graphs
#: needs none of it (gigabytes for the four-node space's outputs)
_SEARCH_STATE = ("_raw_data", "_knn_search_index", "_knn_indices", "_knn_dists",
                 "_rp_forest", "_search_graph")


def cache_dir() -> Path:
    """Where embeddings are cached: ``$ACT_CACHE_DIR`` or ``~/.cache/act``."""
    return cache_root() / "embeddings"


def scalable(rows: int) -> bool:
    """Whether ``rows`` candidates take the approximate-neighbour path."""
    return rows > EXACT_UP_TO


def _fuzzy_model(rows: np.ndarray, kind: str, seed: int, approximate: bool,
                 layout: dict | None):
    """A fitted UMAP model of one feature kind: its fuzzy graph, and its layout unless
    ``layout`` (tqdm options for the epochs' bar) is None. From exact distances, or
    (``approximate``) from nearest-neighbour descent, same metric and neighbour count
    either way."""
    import umap

    n_neighbors = min(NEIGHBOURS[kind], len(rows) - 1)
    options = dict(n_neighbors=n_neighbors, random_state=seed,
                   transform_mode="graph" if layout is None else "embedding",
                   tqdm_kwds=layout)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # precomputed metric: no inverse_transform; fine
        if approximate:
            rows = np.asarray(rows, dtype=np.float32)
            model = umap.UMAP(metric=METRICS[kind], force_approximation_algorithm=True,
                              low_memory=True,
                              precomputed_knn=_neighbours(rows, kind, n_neighbors, seed),
                              **options)
            model.fit(rows)
            if layout is None:  # the union needs the graph alone: free the data and index
                for name in _SEARCH_STATE:
                    if hasattr(model, name):
                        setattr(model, name, None)
            return model
        from sklearn.metrics import pairwise_distances

        model = umap.UMAP(metric="precomputed", **options)
        distances = pairwise_distances(np.asarray(rows, dtype=np.float64), metric=METRICS[kind],
                                       n_jobs=1)
        return model.fit(distances)


def _neighbours(rows: np.ndarray, kind: str, n_neighbors: int,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The approximate k-nearest-neighbour graph (indices, distances) by NN-descent, as
    umap-learn computes it but from a forest of :data:`FOREST_TREES` random-projection
    trees: for dense rows each tree stores a hyperplane per node, and umap-learn's 33
    trees for 300,000 rows of 1,000 outputs held 3 GB; the descent's iterations refine
    what fewer trees start from."""
    from pynndescent import NNDescent

    index = NNDescent(rows, n_neighbors=n_neighbors, metric=METRICS[kind], random_state=seed,
                      n_trees=FOREST_TREES, n_iters=max(5, round(np.log2(len(rows)))),
                      max_candidates=60, low_memory=True, compressed=True)
    return index.neighbor_graph


def compute_embedding(rows_by_kind: dict[str, np.ndarray], feature_set: str, seed: int,
                      progress: bool = False, approximate: bool | None = None):
    """Embed rows (all candidates) into 2-D; ``rows_by_kind`` has outputs and/or fisher.
    ``progress`` shows a bar over the union's two graphs, then one over the layout's
    epochs;
    ``approximate`` forces (or forbids) nearest-neighbour descent, by default used above
    :data:`EXACT_UP_TO` rows. ``feature_set`` is one its callers have checked
    (:class:`actsearch.config.SearchConfig`, the replay's algorithms)."""
    n = len(next(iter(rows_by_kind.values())))
    approximate = scalable(n) if approximate is None else approximate
    if n < 4:
        # UMAP needs a few neighbours; so few functions are better searched exhaustively.
        rng = np.random.default_rng(seed)
        return rng.normal(size=(n, 2))
    layout = Progress.options(disable=not progress, desc=f"UMAP layout of {n:,}",
                              unit="epoch", bar_format=None)  # None: tqdm's, not umap-learn's
    if feature_set != "union":
        rows = rows_by_kind[feature_set]
        return _fuzzy_model(rows, feature_set, seed, approximate, layout).embedding_
    with Progress(total=2, desc=f"UMAP graphs of {n:,}", unit="graph",
                  disable=not progress) as bar:
        models = []
        for kind in ("outputs", "fisher"):
            bar.set_postfix_str(f"{kind}: neighbours and fuzzy graph")
            models.append(_fuzzy_model(rows_by_kind[kind], kind, seed, approximate, None))
            bar.update()
    return _union_layout(models, seed, layout)


def _union_layout(models: list, seed: int, layout: dict) -> np.ndarray:
    """The 2-D layout of the union of two fitted models' fuzzy graphs: umap-learn's
    ``models[0] + models[1]`` step by step with its own functions, but drawn from
    :data:`UNION_STATE` ``+ seed``."""
    from scipy.sparse.csgraph import connected_components
    from sklearn.utils import check_random_state
    from umap.umap_ import (
        find_ab_params,
        general_simplicial_set_union,
        reset_local_connectivity,
        simplicial_set_embedding,
    )

    first = models[0]
    graph = general_simplicial_set_union(models[0].graph_, models[1].graph_)
    graph = reset_local_connectivity(graph, True)
    # a disconnected union has no spectral layout: random, as umap-learn falls back to
    init = "spectral" if connected_components(graph)[0] == 1 else "random"
    a, b = find_ab_params(first.spread, first.min_dist)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        coords, _ = simplicial_set_embedding(
            None, graph, first.n_components, first.learning_rate, a, b,
            first.repulsion_strength, first.negative_sample_rate, first.n_epochs, init,
            check_random_state(UNION_STATE + seed), "euclidean", {}, False, {}, False,
            parallel=False, tqdm_kwds=layout,
        )
    return coords


def embed(
    features: Features, feature_set: str, seed: int = 0, cache: Path | bool | None = True,
    progress: bool = True,
) -> np.ndarray:
    """2-D coordinates of ``features.candidates`` (in order) for ``feature_set``.

    ``cache``: True for :func:`cache_dir`, a folder, or False/None for no caching.
    ``progress``: a bar while an embedding is computed (not when it comes from the cache).
    """
    features.require(feature_set)
    mask = features.candidates
    folder = cache_dir() if cache is True else (Path(cache) if cache else None)
    path = None
    if folder is not None:
        path = folder / f"{features.key()}-{feature_set}-{seed}-v{CACHE_VERSION}.npy"
        if path.is_file():
            try:
                coords = np.load(path)
                if coords.shape == (int(mask.sum()), 2):
                    return coords
            except (OSError, ValueError):
                pass  # a damaged cache file is recomputed and replaced
        make_parent(path)  # a cache folder that cannot be made fails before the work
    # the approximate path works in float32 (umap-learn's own precision): mask and convert
    # in one copy, not two
    dtype = np.float32 if scalable(int(mask.sum())) else None
    rows = {}
    if feature_set in ("outputs", "union"):
        rows["outputs"] = _compress(features.outputs, mask, dtype)
    if feature_set in ("fisher", "union"):
        rows["fisher"] = _compress(features.fisher, mask, dtype)
    coords = np.asarray(compute_embedding(rows, feature_set, seed, progress), dtype=np.float64)
    if path is not None:
        save_array(path, coords)
    return coords


def _compress(rows: np.ndarray, mask: np.ndarray, dtype) -> np.ndarray:
    """``rows[mask]`` as ``dtype`` (None: unchanged), converted block by block."""
    if dtype is None:
        return rows[mask]
    index = np.flatnonzero(mask)
    out = np.empty((len(index), rows.shape[1]), dtype=dtype)
    for start in range(0, len(index), 65_536):
        out[start : start + 65_536] = rows[index[start : start + 65_536]]
    return out


def save_array(path: Path, array: np.ndarray) -> None:
    """``np.save`` to ``path`` atomically (a kill never leaves half a file)."""
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        np.save(fh, array)
