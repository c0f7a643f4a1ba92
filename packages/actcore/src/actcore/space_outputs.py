"""Exact outputs of functions and of whole search spaces, compared by fingerprint.

The space evaluator walks a schema's pattern bottom-up: each node keeps only its
distinct float64 output rows (with their non-finite flags), and a node's candidate rows
are computed from its children's distinct rows, so shared sub-expressions are evaluated
once and the four-node space's million functions cost a few seconds. Rows are compared
through exact 88-bit fingerprints (see :mod:`actcore.equivalence`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from actcore.console import Progress
from actcore.errors import ActError
from actcore.evaluate import operator_fn, pad, round_to_float32
from actcore.pattern import Pattern

CHUNK_ROWS = 512
MAX_FUNCTIONS = 100_000_000  # per-name arrays must fit in memory
_BLOCK = 64
_FINGERPRINT_BITS = 88
_MANTISSA_BITS = 52  # |partial sums| stay below 2**52 < 2**53: float64 sums are exact


class Fingerprint:
    """Exact 88-bit fingerprints of rows of ``words`` 32-bit words."""

    def __init__(self, words: int, seed: int = 20231):
        weight_bits = _MANTISSA_BITS - 31 - math.ceil(math.log2(max(words, 2)))
        if weight_bits < 8:
            raise ActError(f"rows of {words} words are too long to fingerprint exactly")
        columns = math.ceil(_FINGERPRINT_BITS / weight_bits)
        gen = torch.Generator().manual_seed(seed)
        self.weights = torch.randint(
            0, 2**weight_bits, (words, columns), generator=gen, dtype=torch.int64
        ).double()

    def __call__(self, rows: Tensor) -> np.ndarray:
        """Per row of the 2-D ``rows`` (float32 or float64, NaN canonical): its fingerprint
        as ``columns`` int64 values."""
        words = rows.view(torch.int32)
        keys = np.empty((len(rows), self.weights.shape[1]), dtype=np.int64)
        for lo in range(0, len(rows), _BLOCK):  # blocks that stay in cache
            block = words[lo : lo + _BLOCK].double() @ self.weights
            keys[lo : lo + len(block)] = block.numpy().astype(np.int64)
        return keys


def canonical(rows: Tensor) -> tuple[Tensor, np.ndarray]:
    """``rows`` with one NaN bit pattern, and per row whether it has a non-finite value."""
    # a finite sum proves a finite row; only the few others need the slow path
    suspect = (~torch.isfinite(rows.sum(dim=1))).nonzero().ravel()
    nonfinite = np.zeros(len(rows), dtype=bool)
    if len(suspect):
        sub = rows[suspect]
        nonfinite[suspect.numpy()] = ~torch.isfinite(sub).all(dim=1).numpy()
        rows = rows.clone()
        rows[suspect] = torch.where(sub.isnan(), torch.nan, sub)
    return rows, nonfinite


def as_bytes(keys: np.ndarray) -> np.ndarray:
    """Rows of an int64 array as one fixed-size byte string each (for ``np.unique``)."""
    keys = np.ascontiguousarray(keys)
    return keys.view(np.dtype((np.void, keys.shape[1] * 8))).ravel()


@dataclass
class _Table:
    """A pattern's distinct float64 rows (bit for bit, with their flags) and, per name,
    its row."""

    rows: Tensor
    nonfinite: np.ndarray
    index: np.ndarray


class SpaceEvaluator:
    """Fingerprints every name of a space through tables of distinct sub-results."""

    def __init__(self, x: Tensor, progress: Progress | None):
        self.n = len(x)
        self.x = pad(x.to(torch.float32)).double()
        self.exact = Fingerprint(2 * self.n)  # float64 rows: two words a value
        self.rounded = Fingerprint(self.n)
        self.progress = progress
        self.tables: dict[Pattern, _Table] = {}

    def table(self, pattern: Pattern) -> _Table:
        if pattern not in self.tables:
            if pattern.is_input:
                self.tables[pattern] = _Table(
                    self.x[None], np.zeros(1, dtype=bool), np.zeros(1, dtype=np.int64)
                )
            else:
                children = [self.table(arg) for arg in pattern.args]
                keys, flags = self.combo_keys(pattern, children, numeric=False)
                keys = np.concatenate([keys, flags[:, None].astype(np.int64)], axis=1)
                _, first, inverse = np.unique(
                    as_bytes(keys), return_index=True, return_inverse=True
                )
                order = np.argsort(first)  # distinct rows in order of first occurrence
                rows = torch.cat(list(self.combos(pattern, children, first[order])))
                row_of = np.empty_like(order)
                row_of[order] = np.arange(len(order))
                index = row_of[inverse.ravel()][self.combo_index(pattern, children)]
                self.tables[pattern] = _Table(rows, flags[first[order]], index)
        return self.tables[pattern]

    def root_size(self, pattern: Pattern) -> int:
        """How many combinations :meth:`root` evaluates (building the children's tables,
        the small part of the work): the total a progress bar needs for its ETA."""
        if pattern.is_input:
            return 1
        children = [self.table(arg) for arg in pattern.args]
        return len(pattern.choices) * math.prod(len(t.rows) for t in children)

    def root(self, pattern: Pattern) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Numeric fingerprints and non-finite flags per distinct combination, and per
        name the combination it is."""
        if pattern.is_input:
            table = self.table(pattern)
            keys, flags = self.keys(table.rows, numeric=True)
            if self.progress is not None:
                self.progress.update(len(keys))
            return as_bytes(keys), flags, table.index
        children = [self.table(arg) for arg in pattern.args]
        keys, flags = self.combo_keys(pattern, children, numeric=True)
        return as_bytes(keys), flags, self.combo_index(pattern, children)

    def keys(self, rows: Tensor, numeric: bool) -> tuple[np.ndarray, np.ndarray]:
        """Fingerprints of float64 rows (as numbers once rounded to float32, or bit for
        bit) and whether each is non-finite in float32."""
        rows = rows.reshape(-1, rows.shape[-1])[:, : self.n]
        rounded, nonfinite = canonical(round_to_float32(rows) + 0.0)  # −0.0 → +0.0
        if numeric:
            return self.rounded(rounded), nonfinite
        exact, _ = canonical(rows.contiguous())
        return self.exact(exact), nonfinite

    def combo_keys(
        self, pattern: Pattern, children: list[_Table], numeric: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fingerprints and non-finite flags (own or inherited) of every combination."""
        keys, nonfinite = [], []
        for rows in self.all_combos(pattern, children):
            key, flags = self.keys(rows, numeric)
            keys.append(key)
            nonfinite.append(flags)
            if numeric and self.progress is not None:  # the roots' combinations
                self.progress.update(len(key))
        inherited = children[0].nonfinite  # OR of the children's flags, combination-wise
        for table in children[1:]:
            inherited = np.logical_or.outer(inherited, table.nonfinite)
        inherited = np.tile(np.ravel(inherited), len(pattern.choices))
        return np.concatenate(keys), np.concatenate(nonfinite) | inherited

    def all_combos(self, pattern: Pattern, children: list[_Table]) -> Iterator[Tensor]:
        """Outputs of every combination in order, by broadcasting (no gathered copies):
        the first child's rows in blocks against all rows of the others."""
        first, *rest = [t.rows for t in children]
        per_first = max(1, CHUNK_ROWS // max(1, math.prod(len(r) for r in rest)))
        k = len(children)
        shaped = [
            r.view(*(len(r) if j == i else 1 for j in range(k)), -1)
            for i, r in enumerate(rest, start=1)
        ]
        for name in pattern.choices:
            fn = operator_fn(name)
            for lo in range(0, len(first), per_first):
                block = first[lo : lo + per_first]
                out = fn(block.view(len(block), *([1] * (k - 1)), -1), *shaped)
                # an operator may ignore an argument; every combination still needs a row
                yield out.broadcast_to((len(block), *(len(r) for r in rest), out.shape[-1]))

    def combos(self, pattern: Pattern, children: list[_Table], ids: np.ndarray) -> Iterator[Tensor]:
        """Outputs of combinations ``ids`` (operator-major, then child rows), in order of
        operator; ``ids`` must be sorted."""
        per_op = math.prod(len(t.rows) for t in children)
        ops, rest = np.divmod(ids, per_op)
        child_rows = np.unravel_index(rest, [len(t.rows) for t in children])
        bounds = np.searchsorted(ops, np.arange(len(pattern.choices) + 1))
        for o, name in enumerate(pattern.choices):
            lo, hi = bounds[o], bounds[o + 1]
            if lo == hi:
                continue
            args = [t.rows[torch.from_numpy(rows[lo:hi])] for t, rows in zip(children, child_rows)]
            yield operator_fn(name)(*args)

    @staticmethod
    def combo_index(pattern: Pattern, children: list[_Table]) -> np.ndarray:
        """For each name of ``pattern`` (in order), its combination id."""
        sizes = [len(t.rows) for t in children]
        index = np.arange(len(pattern.choices), dtype=np.int64) * math.prod(sizes)
        for k, table in enumerate(children):
            stride = math.prod(sizes[k + 1 :])
            index = np.add.outer(index, table.index * stride).ravel()
        return index
