"""Features that predict how well an activation function trains, without training it.

Two kinds, as published: the function's outputs on actcore's fixed N(0,1) sample,
and the Fisher log-eigenvalue CDFs of a network using it (from actfim or a benchmark
table's column; a live search may take each layer's quantile function instead).
:class:`Features` holds both for a list of functions together with the validity masks
the search uses to filter out functions likely to fail.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from actcore.console import Progress
from actcore.errors import ActError

FEATURE_SETS = ("outputs", "fisher", "union")

#: The eight well-known functions a search starts from, as published; plots label them.
BASELINES = (
    "elu(x)", "relu(x)", "selu(x)", "sigmoid(x)", "softplus(x)", "softsign(x)", "swish(x)",
    "tanh(x)",
)
#: The published search on a new architecture (CoAtNet) started from these five as well.
EXTENDED_BASELINES = (
    *BASELINES, "elish(x)", "gelu(x)", "hard_sigmoid(x)", "leakyrelu(x)", "mish(x)",
)
BASELINE_SETS = {"published": BASELINES, "extended": EXTENDED_BASELINES}


def baselines_of(spec: str) -> tuple[str, ...]:
    """A search's starting functions: ``published`` (the 8), ``extended`` (13, as for
    CoAtNet) or a comma-separated list of expressions."""
    if spec in BASELINE_SETS:
        return BASELINE_SETS[spec]
    from actcore.expr import parse

    names = tuple(str(parse(name.strip())) for name in spec.split(",") if name.strip())
    if not names:
        raise ValueError("no baseline functions given")
    return names


def check_feature_set(name: str) -> str:
    """``name`` if it is a known feature set; else an error listing them."""
    if name not in FEATURE_SETS:
        from actcore.errors import UnknownNameError

        raise UnknownNameError("feature set", name, FEATURE_SETS)
    return name


OUTPUT_CHUNK = 512  # functions evaluated together (their sub-expressions are shared)


def output_features(names: Sequence[str], normalize: bool = False,
                    progress: bool = False) -> np.ndarray:
    """Each function's outputs on actcore's fixed sample, as float32 rows: the values
    equivalence compares (:func:`actcore.exact_outputs`: computed in float64 and rounded
    once), so every machine gets the same features. ``normalize`` gives the normalised
    functions' outputs (see :func:`normalized`)."""
    from actcore.evaluate import exact_outputs, sample_points

    x = sample_points()
    rows = np.empty((len(names), len(x)), dtype=np.float32)
    with Progress(total=len(names), desc="outputs", unit="fn", unit_scale=True,
                  disable=not progress) as bar:
        for start in range(0, len(names), OUTPUT_CHUNK):
            chunk = list(names[start : start + OUTPUT_CHUNK])
            rows[start : start + len(chunk)] = exact_outputs(chunk, x)[0].numpy()
            bar.update(len(chunk))
    return normalized(names, rows, progress) if normalize else rows


def normalizations(names: Sequence[str], progress: bool = False) -> np.ndarray:
    """``(mean, std)`` under N(0, 1) of each function, NaN where it cannot be normalised
    (no moments, or constant). A few milliseconds each (a 131,073-point quadrature):
    minutes for a large space, hence the bar."""
    from actcore.normalize import normalization

    moments = np.full((len(names), 2), np.nan)
    with Progress(total=len(names), desc="Gaussian moments", unit="fn", unit_scale=True,
                  disable=not progress) as bar:
        for i, name in enumerate(names):
            with contextlib.suppress(ActError):
                moments[i] = normalization(name)
            bar.update()
    return moments


def normalized(names: Sequence[str], rows: np.ndarray, progress: bool = False,
               moments: np.ndarray | None = None) -> np.ndarray:
    """Output rows of the normalised functions, (f - mean) / std under N(0, 1); a row of
    NaN for a function that cannot be normalised. ``moments`` (from
    :func:`normalizations`) saves computing them again."""
    moments = normalizations(names, progress) if moments is None else moments
    out = np.empty_like(rows)
    for start in range(0, len(rows), OUTPUT_CHUNK):  # float64 arithmetic, chunk by chunk
        part = slice(start, start + OUTPUT_CHUNK)
        out[part] = (rows[part] - moments[part, :1]) / moments[part, 1:]
    return out


def match_rows(rows: np.ndarray, targets: np.ndarray) -> list[int | None]:
    """For each target row, a row of ``rows`` with exactly the same values (the same
    function, whatever its name), or None; by 88-bit fingerprints, in linear time."""
    import torch

    from actcore.space_outputs import Fingerprint, as_bytes, canonical

    fingerprint = Fingerprint(rows.shape[1])

    def keys(values: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)) + 0.0
        return as_bytes(fingerprint(canonical(tensor)[0]))

    index = {key: i for i, key in reversed(list(enumerate(keys(rows).tolist())))}
    return [index.get(key) for key in keys(targets).tolist()]


def fisher_matrix(vectors: Sequence[Sequence[float]], dtype=np.float64) -> np.ndarray:
    """Stack Fisher feature vectors (CDFs or quantile functions) into rows of ``dtype``;
    missing or broken spectra become rows of NaN."""
    length = max((len(v) for v in vectors), default=0)
    if length == 0:
        raise ActError("no function has Fisher features (an empty spectrum for every one)")
    rows = np.full((len(vectors), length), np.nan, dtype=dtype)
    for i, vector in enumerate(vectors):
        if len(vector) == length:
            rows[i] = vector
        elif len(vector):
            raise ActError(
                f"Fisher feature vectors differ in length ({len(vector)} and {length}); "
                "were they computed for different networks?"
            )
    return rows


@dataclass
class Features:
    """Feature rows for ``names`` (one per unique function); either kind may be absent."""

    names: list[str]
    outputs: np.ndarray | None = None
    fisher: np.ndarray | None = None
    _key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for kind in ("outputs", "fisher"):
            rows = getattr(self, kind)
            if rows is not None and len(rows) != len(self.names):
                raise ValueError(f"{kind}: {len(rows)} rows for {len(self.names)} functions")

    @property
    def outputs_ok(self) -> np.ndarray:
        """Functions whose outputs are finite everywhere on the sample."""
        if self.outputs is None:
            return np.ones(len(self.names), bool)
        return np.isfinite(self.outputs).all(axis=1)

    @property
    def fisher_ok(self) -> np.ndarray:
        """Functions whose spectrum exists and is finite (else likely to fail training)."""
        if self.fisher is None:
            return np.ones(len(self.names), bool)
        return np.isfinite(self.fisher).all(axis=1)

    @property
    def candidates(self) -> np.ndarray:
        """The surrogate's search space: functions passing every available filter."""
        return self.outputs_ok & self.fisher_ok

    def require(self, feature_set: str) -> None:
        """Raise a clear error when ``feature_set`` needs features this object lacks."""
        if feature_set in ("outputs", "union") and self.outputs is None:
            raise ActError(f"the {feature_set!r} feature set needs output features")
        if feature_set in ("fisher", "union") and self.fisher is None:
            raise ActError(
                f"the {feature_set!r} feature set needs Fisher features, and none are "
                "available (the table has no 'Fisher log eigenvalue CDF' values); "
                "use --features outputs"
            )
        if not self.candidates.any():
            raise ActError("no candidate function has valid features: nothing to search")

    def rows_like(self, names: Sequence[str]) -> dict[str, int]:
        """Rows whose outputs equal those of ``names`` exactly (same function, any name)."""
        if self.outputs is None:
            return {}
        found = match_rows(self.outputs, output_features(names))
        return {name: row for name, row in zip(names, found) if row is not None}

    def key(self) -> str:
        """A digest of the names and feature values: the embedding cache key."""
        if self._key is None:
            digest = hashlib.sha256()
            digest.update("\n".join(self.names).encode())
            for rows in (self.outputs, self.fisher):
                # a view, not a copy: the four-node space's outputs are 1.5 GB
                digest.update(b"|" if rows is None else memoryview(np.ascontiguousarray(rows)))
            self._key = digest.hexdigest()[:24]
        return self._key


def table_features(table, outputs: bool = True) -> Features:
    """Features of every row of an actbench :class:`~actbench.tables.Table`.

    Fisher features come from the table's ``Fisher log eigenvalue CDF`` column (absent
    when no row has one); outputs are computed with actcore from the function names.
    """
    names = table.names()
    fisher = None
    if table.has_fisher:
        fisher = fisher_matrix([table.records[n].fisher_cdf for n in names])
    out = output_features(names) if outputs else None
    return Features(names, outputs=out, fisher=fisher)


def chance_filled(values: np.ndarray, chance: float) -> np.ndarray:
    """Accuracies with non-finite entries (failed runs) replaced by chance accuracy."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(values), values, chance)


