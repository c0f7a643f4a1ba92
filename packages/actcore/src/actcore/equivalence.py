"""Equivalence classes: functions whose exact values on the fixed sample agree in float32.

Two functions are equivalent when their exact values on :func:`actcore.sample_points`
(the float32 points), rounded to float32, are equal as numbers (−0.0 == 0.0,
NaN == NaN, +inf == +inf). This is a property of the functions, not of a machine:
act evaluates in float64 and rounds once, so the ulp-level differences between float32
kernels of different CPUs, vector widths, libraries and devices never reach the
comparison. (Rounding is made robust too: exact arithmetic on float32 points often lands
exactly halfway between two float32 numbers, so values within 2**-36 of a tie round as
the tie; see :func:`actcore.evaluate.round_to_float32`.) Mathematically identical functions such as
``sub(exp(x),expm1(x))`` and ``one(x)`` therefore fall into one class.

**Non-finite flags** say what a float32 network would meet. A *function* is flagged when
any of its sub-expressions (itself included), rounded to float32, is inf or NaN at some
sample point: ``mul(zero(x),exp(exp(x)))`` equals ``zero(x)`` but overflows on the way.
Each class has one canonical **representative**, the member that gets trained: its
shortest unflagged name (ties broken lexicographically), or its shortest name when every
member is flagged. A *class* is flagged when its representative is, i.e. when no member
can be computed finitely in float32. Classes are numbered by their first member in the
input order.

How it scales (a :class:`Space` of a million functions in seconds):

* Rows are compared through a 88-bit fingerprint: the bit patterns as 32-bit words
  (NaN made canonical) times random integer weights, summed in float64. Every partial
  sum stays below 2**53, so the fingerprint is exact and order independent (BLAS can sum
  in any order), and two different rows collide with probability at most 2**-88.
* For a space, each schema node is a table of its *distinct* float64 rows (with their
  flags). A parent is evaluated on the distinct rows of its children, not on every name,
  so ``unary(unary(unary(unary(x))))`` costs 27 × (distinct rows of the depth-3 table)
  rows, not 27**4. Inner tables are compared bit for bit (−0.0 ≠ 0.0, because
  ``reciprocal`` tells them apart); only the final float32 values are compared as numbers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import cached_property

import numpy as np

from actcore import space_outputs
from actcore.console import Progress
from actcore.errors import ActError
from actcore.evaluate import (
    exact_outputs,
    sample_points,
)
from actcore.expr import Expr, parse
from actcore.space import Space
from actcore.threads import torch_threads


class EquivalenceClasses:
    """The classes of a set of functions: representatives, members and non-finite flags."""

    def __init__(
        self,
        names: list[str] | None,
        space: Space | None,
        labels: np.ndarray,
        nonfinite: np.ndarray,
        lengths: np.ndarray,
    ):
        """``labels[p]`` is a class label of position ``p`` (any integers),
        ``nonfinite[p]`` its function's flag and ``lengths[p]`` its name's length."""
        self._names = names
        self._space = space
        self._lookup = {name: i for i, name in enumerate(names)} if names is not None else None
        # compact the labels and number classes by their first member
        used, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
        rank = np.empty(len(used), dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(len(used))
        self.class_of = rank[inverse.ravel()]
        self._flags = np.asarray(nonfinite, dtype=bool)
        self._order = np.argsort(self.class_of, kind="stable")
        self._starts = np.searchsorted(self.class_of[self._order], np.arange(len(used) + 1))
        # unflagged members come first: a flagged name is longer than any other
        self._rep = self._representatives(lengths + self._flags * (int(lengths.max()) + 1))

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
        """Whether a float32 network computing ``name`` meets inf or NaN on the sample
        (in its output or any sub-expression)."""
        return bool(self._flags[self._position(name)])

    def sizes(self) -> np.ndarray:
        """Number of members of each class."""
        return np.diff(self._starts)

    def nonfinite_flags(self) -> np.ndarray:
        """Per class, whether it is flagged: no member computes finitely in float32."""
        return self._flags[self._rep]

    def digest(self) -> str:
        """A hash of everything above (classes, members, representatives, flags): two
        machines found the same classes exactly when their digests agree."""
        h = hashlib.sha256()
        for array in (self.class_of, self._flags, self._rep):
            h.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
        h.update("\n".join(self.representatives).encode())
        return h.hexdigest()[:16]


def equivalence_classes(
    functions: Iterable[str | Expr] | Space, progress: bool = False
) -> EquivalenceClasses:
    """Group functions (names, expressions or a whole :class:`Space`) into classes."""
    bar = Progress(desc="equivalence", unit="fn", unit_scale=True, disable=not progress)
    with bar, torch_threads(1):
        if isinstance(functions, Space):
            return _space_classes(functions, bar if progress else None)
        return _list_classes(functions, bar)


def _list_classes(functions: Iterable[str | Expr], bar: Progress) -> EquivalenceClasses:
    names = list(dict.fromkeys(str(parse(f)) for f in functions))
    if not names:
        raise ActError("no functions to group into classes")
    x = sample_points()
    fingerprint = space_outputs.Fingerprint(len(x))
    keys, nonfinite = [], []
    for start in range(0, len(names), space_outputs.CHUNK_ROWS):
        rows, flags = exact_outputs(names[start : start + space_outputs.CHUNK_ROWS], x)
        canonical, _ = space_outputs.canonical(rows + 0.0)  # + 0.0: −0.0 → +0.0
        keys.append(fingerprint(canonical))
        nonfinite.append(flags)
        bar.update(len(rows))
    _, inverse = np.unique(space_outputs.as_bytes(np.concatenate(keys)), return_inverse=True)
    lengths = np.array([len(n) for n in names], dtype=np.int64)
    return EquivalenceClasses(names, None, inverse.ravel(), np.concatenate(nonfinite), lengths)


def _space_classes(space: Space, bar: Progress | None) -> EquivalenceClasses:
    if space.count() > space_outputs.MAX_FUNCTIONS:
        raise ActError(
            f"{space!r} has {space.count():,} functions; deduplicating more than "
            f"{space_outputs.MAX_FUNCTIONS:,} (about 40 bytes each) is not supported"
        )
    runner = space_outputs.SpaceEvaluator(sample_points(), bar)
    if bar is not None:
        bar.reset(total=sum(runner.root_size(pattern) for pattern in space.patterns))
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
    _, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    combos = np.concatenate(per_name)
    return EquivalenceClasses(
        None, space, inverse.ravel()[combos], np.concatenate(flags)[combos],
        np.concatenate(lengths).astype(np.int64),
    )
