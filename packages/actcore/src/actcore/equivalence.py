"""Equivalence classes: functions whose float32 outputs agree on the fixed sample.

Two functions are equivalent when their outputs on :func:`actcore.sample_points` are
equal as numbers (−0.0 == 0.0, NaN == NaN, inf == inf). Each class has one canonical
**representative**: its shortest name, ties broken lexicographically. Classes are
numbered by the position of their first member in the input order.

How it scales (a :class:`Space` of a million functions in seconds):

* Rows are compared through a 88-bit fingerprint: the float32 bit patterns (NaN made
  canonical) times random integer weights, summed in float64. Every partial sum stays
  below 2**53, so the fingerprint is exact and order independent (BLAS can sum in any
  order), and two different rows collide with probability at most 2**-88.
* For a space, each schema node is a table of its *distinct* output rows. A parent is
  evaluated on the distinct rows of its children, not on every name, so
  ``unary(unary(unary(unary(x))))`` costs 27 × (distinct rows of the depth-3 table)
  rows, not 27**4. Inner tables are compared bit for bit (−0.0 ≠ 0.0, because
  ``reciprocal`` tells them apart); only the final outputs are compared as numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from actcore.errors import ActError
from actcore.evaluate import evaluate, operator_fn, pad, sample_points
from actcore.expr import Expr, parse
from actcore.space import Pattern, Space

CHUNK_ROWS = 4096
MAX_FUNCTIONS = 100_000_000  # per-name arrays must fit in memory
_BLOCK = 64
_FINGERPRINT_BITS = 88
_MANTISSA_BITS = 52  # |partial sums| stay below 2**52 < 2**53: float64 sums are exact


class _Fingerprint:
    """Exact 88-bit fingerprints of float32 rows of a fixed length."""

    def __init__(self, n: int, seed: int = 20231):
        weight_bits = _MANTISSA_BITS - 31 - math.ceil(math.log2(max(n, 2)))
        if weight_bits < 8:
            raise ActError(f"rows of {n} points are too long to fingerprint exactly")
        columns = math.ceil(_FINGERPRINT_BITS / weight_bits)
        gen = torch.Generator().manual_seed(seed)
        self.weights = torch.randint(
            0, 2**weight_bits, (n, columns), generator=gen, dtype=torch.int64
        ).double()
        self.n = n

    def __call__(self, rows: Tensor, numeric: bool) -> tuple[np.ndarray, np.ndarray]:
        """Per row of ``rows[..., :n]`` (flattened to 2-D): its fingerprint (a fixed-size
        byte string) and whether it has a non-finite value."""
        rows = rows.reshape(-1, rows.shape[-1])[:, : self.n]
        keys = np.empty((len(rows), self.weights.shape[1]), dtype=np.int64)
        nonfinite = np.zeros(len(rows), dtype=bool)
        weights = self.weights.to(rows.device)
        for lo in range(0, len(rows), _BLOCK):  # blocks that stay in cache
            block = rows[lo : lo + _BLOCK]
            if numeric:
                block = block + 0.0  # −0.0 → +0.0
            keys[lo : lo + len(block)] = self._keys(block, weights)
            # a finite sum proves a finite row; only the few others need the slow path
            suspect = (~torch.isfinite(block.sum(dim=1))).nonzero().ravel()
            if len(suspect):
                sub = block[suspect]
                at = lo + suspect.cpu().numpy()
                nonfinite[at] = ~torch.isfinite(sub).all(dim=1).cpu().numpy()
                keys[at] = self._keys(torch.where(sub.isnan(), torch.nan, sub), weights)
        return keys.view(np.dtype((np.void, keys.shape[1] * 8))).ravel(), nonfinite

    @staticmethod
    def _keys(rows: Tensor, weights: Tensor) -> np.ndarray:
        return (rows.view(torch.int32).double() @ weights).cpu().numpy().astype(np.int64)


@dataclass
class _Table:
    """A pattern's distinct output rows (bit for bit) and, per name, its row."""

    rows: Tensor
    index: np.ndarray


class _SpaceEvaluator:
    """Fingerprints every name of a space through tables of distinct sub-results."""

    def __init__(self, x: Tensor, progress: tqdm | None):
        self.x = pad(x)
        self.fingerprint = _Fingerprint(len(x))
        self.progress = progress
        self.tables: dict[Pattern, _Table] = {}

    def table(self, pattern: Pattern) -> _Table:
        if pattern not in self.tables:
            if pattern.is_input:
                self.tables[pattern] = _Table(self.x[None], np.zeros(1, dtype=np.int64))
            else:
                children = [self.table(arg) for arg in pattern.args]
                keys, _ = self.combo_keys(pattern, children, numeric=False)
                _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
                order = np.argsort(first)  # distinct rows in order of first occurrence
                rows = torch.cat(list(self.combos(pattern, children, first[order])))
                row_of = np.empty_like(order)
                row_of[order] = np.arange(len(order))
                index = row_of[inverse.ravel()][self.combo_index(pattern, children)]
                self.tables[pattern] = _Table(rows, index)
        return self.tables[pattern]

    def root(self, pattern: Pattern) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Numeric fingerprints and non-finite flags per distinct combination, and per
        name the combination it is."""
        if pattern.is_input:
            keys, nonfinite = self.fingerprint(self.x[None], numeric=True)
            return keys, nonfinite, np.zeros(1, dtype=np.int64)
        children = [self.table(arg) for arg in pattern.args]
        keys, nonfinite = self.combo_keys(pattern, children, numeric=True)
        return keys, nonfinite, self.combo_index(pattern, children)

    def combo_keys(
        self, pattern: Pattern, children: list[_Table], numeric: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fingerprints and non-finite flags of every combination, in order."""
        keys, nonfinite = [], []
        for rows in self.all_combos(pattern, children):
            key, flags = self.fingerprint(rows, numeric)
            keys.append(key)
            nonfinite.append(flags)
            if self.progress is not None:
                self.progress.update(len(key))
        return np.concatenate(keys), np.concatenate(nonfinite)

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


class EquivalenceClasses:
    """The classes of a set of functions: representatives, members and non-finite flags."""

    def __init__(
        self,
        names: list[str] | None,
        space: Space | None,
        labels: np.ndarray,
        label_nonfinite: np.ndarray,
        lengths: np.ndarray,
    ):
        """``labels[p]`` is a class label of position ``p`` (any integers),
        ``label_nonfinite[label]`` its flag and ``lengths[p]`` its name's length."""
        self._names = names
        self._space = space
        self._lookup = {name: i for i, name in enumerate(names)} if names is not None else None
        # compact the labels and number classes by their first member
        used, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
        rank = np.empty(len(used), dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(len(used))
        self.class_of = rank[inverse.ravel()]
        self._nonfinite = np.empty(len(used), dtype=bool)
        self._nonfinite[rank] = label_nonfinite[used]
        count = len(used)
        self._order = np.argsort(self.class_of, kind="stable")
        self._starts = np.searchsorted(self.class_of[self._order], np.arange(count + 1))
        self._rep = self._representatives(lengths)

    def _representatives(self, lengths: np.ndarray) -> np.ndarray:
        """Per class, the position of its shortest name (ties: lexicographically first)."""
        members = self._order
        cls = self.class_of[members]
        by_length = members[np.lexsort((lengths[members], cls))]
        shortest = lengths[by_length[self._starts[:-1]]]
        tied = by_length[lengths[by_length] == shortest[self.class_of[by_length]]]
        tied_cls = self.class_of[tied]
        rep = by_length[self._starts[:-1]].copy()
        counts = np.bincount(tied_cls, minlength=len(rep))
        contested = np.isin(tied_cls, np.flatnonzero(counts > 1))
        if contested.any():
            candidates = tied[contested]
            names = np.array(self._names_at(candidates), dtype=str)
            order = np.lexsort((names, self.class_of[candidates]))
            ranked = candidates[order]
            firsts = np.unique(self.class_of[ranked], return_index=True)[1]
            rep[self.class_of[ranked[firsts]]] = ranked[firsts]
        return rep

    def _names_at(self, positions: np.ndarray) -> list[str]:
        if self._names is not None:
            return [self._names[p] for p in positions]
        assert self._space is not None
        return self._space.names(positions)

    def _position(self, name: str | Expr) -> int:
        if self._lookup is not None:
            key = str(parse(name))
            if key not in self._lookup:
                raise ActError(f"{key} is not one of the functions grouped into classes")
            return self._lookup[key]
        assert self._space is not None
        return self._space.index(name)

    def __len__(self) -> int:
        return len(self._rep)

    @cached_property
    def representatives(self) -> list[str]:
        """One canonical name per class, classes in order of their first member."""
        return self._names_at(self._rep)

    def class_index(self, name: str | Expr) -> int:
        """The number of the class of ``name`` (an index into :attr:`representatives`)."""
        return int(self.class_of[self._position(name)])

    def members(self, name: str | Expr) -> list[str]:
        """Every function of the class of ``name`` (in input order)."""
        c = self.class_index(name)
        return self._names_at(self._order[self._starts[c] : self._starts[c + 1]])

    def representative(self, name: str | Expr) -> str:
        """The canonical name of the class of ``name``."""
        return self._names_at(self._rep[[self.class_index(name)]])[0]

    def nonfinite(self, name: str | Expr) -> bool:
        """Whether ``name`` has a non-finite output (inf or NaN) on the sample."""
        return bool(self._nonfinite[self.class_index(name)])

    def sizes(self) -> np.ndarray:
        """Number of members of each class."""
        return np.diff(self._starts)

    def nonfinite_flags(self) -> np.ndarray:
        """Per class, whether its functions are non-finite on the sample."""
        return self._nonfinite.copy()


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch single-threaded: the work comes in cache-sized blocks, where a second
    thread costs more in synchronisation than it gains (and far more on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def equivalence_classes(
    functions: Iterable[str | Expr] | Space, progress: bool = False
) -> EquivalenceClasses:
    """Group functions (names, expressions or a whole :class:`Space`) into classes."""
    bar = tqdm(desc="equivalence", unit="fn", unit_scale=True, disable=not progress)
    with bar, _one_thread():
        if isinstance(functions, Space):
            return _space_classes(functions, bar if progress else None)
        return _list_classes(functions, bar)


def _list_classes(functions: Iterable[str | Expr], bar: tqdm) -> EquivalenceClasses:
    names = list(dict.fromkeys(str(parse(f)) for f in functions))
    x = sample_points()
    fingerprint = _Fingerprint(len(x))
    keys, nonfinite = [], []
    for start in range(0, len(names), CHUNK_ROWS):
        rows = evaluate(names[start : start + CHUNK_ROWS], pad(x))
        key, flags = fingerprint(rows, numeric=True)
        keys.append(key)
        nonfinite.append(flags)
        bar.update(len(rows))
    if not names:
        raise ActError("no functions to group into classes")
    _, first, inverse = np.unique(np.concatenate(keys), return_index=True, return_inverse=True)
    lengths = np.array([len(n) for n in names], dtype=np.int32)
    flags = np.concatenate(nonfinite)[first]
    return EquivalenceClasses(names, None, inverse.ravel(), flags, lengths)


def _space_classes(space: Space, bar: tqdm | None) -> EquivalenceClasses:
    if space.count() > MAX_FUNCTIONS:
        raise ActError(
            f"{space!r} has {space.count():,} functions; deduplicating more than "
            f"{MAX_FUNCTIONS:,} (about 40 bytes each) is not supported"
        )
    runner = _SpaceEvaluator(sample_points(), bar)
    keys, flags, per_name, lengths = [], [], [], []
    offset = 0
    for i, pattern in enumerate(space.patterns):
        combo_keys, nonfinite, index = runner.root(pattern)
        kept = space._kept(i)
        name_lengths = pattern.name_lengths()
        if kept is not None:
            index, name_lengths = index[kept], name_lengths[kept]
        keys.append(combo_keys)
        flags.append(nonfinite)
        per_name.append(index + offset)
        lengths.append(name_lengths)
        offset += len(combo_keys)
    _, first, inverse = np.unique(np.concatenate(keys), return_index=True, return_inverse=True)
    class_of = inverse.ravel()[np.concatenate(per_name)]
    nonfinite_flags = np.concatenate(flags)[first]
    return EquivalenceClasses(None, space, class_of, nonfinite_flags, np.concatenate(lengths))
