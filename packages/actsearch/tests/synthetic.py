"""Small benchmark tables in the Act-Bench schema for actsearch's tests.

Functions are real expressions (so output features are computed by actcore); the
"Fisher CDF" is a deterministic stand-in (the CDF of the function's clipped outputs over
a fixed grid) and accuracy is a smooth function of a 2-D embedding.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from actbench.tables import Table, TableRecord

UNARY = ["relu", "tanh", "sigmoid", "swish", "elu", "abs", "exp", "sinh", "identity",
         "softplus", "erf", "square", "arctan"]
BINARY = ["add", "mul", "max", "sub"]


def unique_functions(unary=UNARY, binary=BINARY) -> tuple[list[str], dict[str, list[str]]]:
    """ReLU plus binary(unary(x),unary(x)) over a subset, one name per distinct output."""
    from actcore import equivalence_classes

    names = ["relu(x)", *(f"{b}({u}(x),{v}(x))" for b in binary for u in unary for v in unary)]
    classes = equivalence_classes(names)
    unique = [names[i] for i in sorted({names.index(r) for r in classes.representatives})]
    return unique, {n: classes.members(n) for n in unique}


def fake_cdf(row: np.ndarray, bins: int = 40) -> list[float]:
    if not np.isfinite(row).all():
        return []
    grid = np.linspace(-5, 5, bins)
    return list(np.searchsorted(np.sort(np.clip(row, -5, 5)), grid) / len(row))


def record(acc: float, equivalent: list[str], cdf: list[float]) -> TableRecord:
    return TableRecord(
        train_accuracy=acc, val_accuracy=acc, train_loss=1 - acc, val_loss=1 - acc,
        test_accuracy=acc, test_loss=1 - acc, equivalent=equivalent, fisher_cdf=cdf,
        runtime=1.0,
    )


def smooth_table(
    accuracy: Callable[[np.ndarray], np.ndarray] | None = None, cache=None, feature_set="union"
) -> Table:
    """A table whose accuracy is a smooth function of the ``feature_set`` embedding."""
    from actsearch.embedding import embed
    from actsearch.features import Features, fisher_matrix, output_features

    names, equivalent = unique_functions()
    outputs = output_features(names)
    cdfs = [fake_cdf(r) for r in outputs]
    features = Features(names, outputs, fisher_matrix(cdfs))
    coords = embed(features, feature_set, seed=0, cache=cache)
    z = (coords - coords.mean(0)) / coords.std(0)
    if accuracy is None:
        peak = z[np.argmax(z[:, 0] + 0.5 * z[:, 1])]  # at the edge of the cloud

        def accuracy(z: np.ndarray) -> np.ndarray:  # a hill, highest at the peak
            d = np.sqrt(((z - peak) ** 2).sum(1))
            return 0.1 + 0.8 * (1 - d / d.max()) ** 4

    acc = np.full(len(names), 0.1)
    acc[features.candidates] = accuracy(z)
    return Table({n: record(float(a), equivalent[n], c) for n, a, c in zip(names, acc, cdfs)})
