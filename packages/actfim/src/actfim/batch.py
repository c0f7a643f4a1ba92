"""Spectra of many activation functions on one architecture, resumable.

Every function gets the same initial weights: the model is built under the same seed,
and the layer parameters of a reference build are copied in by name (so an activation
that draws random numbers when constructed cannot shift the weights). Results go to a
SQLite file, one committed transaction per function: a run killed halfway loses nothing
finished, and running it again computes only what is missing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import torch
from pydantic import BaseModel
from torch import Tensor, nn

from actcore import parse, to_module
from actcore.atomic import write_atomic
from actcore.console import Progress
from actcore.errors import ActError
from actcore.normalize import normalization
from actcore.stacked import StackedActivation
from actcore.store import Store
from actcore.threads import seeded
from actfim.factors import mixing_module
from actfim.features import fisher_cdf, fisher_quantiles
from actfim.options import FisherOptions
from actfim.spectrum import Spectrum, kfac_spectrum, stacked_spectra
from actfim.stacked import StackedSpectra, functions_per_pass

ModelFactory = Callable[[nn.Module], nn.Module]


class SpectrumRecord(BaseModel):
    """What a batch run keeps of one function's spectrum."""

    expression: str
    valid: bool
    reason: str | None = None
    num_weights: list[int] = []
    cdf: list[float] | None = None  # the Act-Bench "Fisher log eigenvalue CDF"
    quantiles: list[float] | None = None  # the layers' quantile functions, when asked for
    clamped: int = 0
    seconds: float = 0.0

    @classmethod
    def from_spectrum(cls, expression: str, spectrum: Spectrum,
                      quantiles: bool = False) -> SpectrumRecord:
        """The record of one spectrum; ``quantiles``: with its quantile functions."""
        valid = spectrum.valid
        return cls(
            expression=expression,
            valid=valid,
            reason=spectrum.reason,
            num_weights=spectrum.num_weights,
            cdf=fisher_cdf(spectrum).tolist() if valid else None,
            quantiles=fisher_quantiles(spectrum).tolist() if valid and quantiles else None,
            clamped=sum(layer.clamped_a + layer.clamped_g for layer in spectrum.layers),
            seconds=spectrum.seconds,
        )

    @classmethod
    def from_stacked(cls, expressions: list[str], spectra: StackedSpectra,
                     quantiles: bool = False) -> list[SpectrumRecord]:
        """The records of stacked spectra, stack ``s`` being ``expressions[s]``."""
        cdfs = spectra.cdfs()
        rows = spectra.quantiles() if quantiles else None
        return [
            cls(expression=e, valid=spectra.valid[s], reason=spectra.reasons[s],
                num_weights=spectra.num_weights if not spectra.failed[s] else [],
                cdf=cdfs[s].tolist() if spectra.valid[s] else None,
                quantiles=rows[s].tolist() if rows is not None and spectra.valid[s] else None,
                clamped=spectra.clamped(s) if not spectra.failed[s] else 0,
                seconds=spectra.seconds)
            for s, e in enumerate(expressions)
        ]


class SpectrumStore(Store):
    """A SQLite file of :class:`SpectrumRecord` s, tagged with the run's settings.

    Opening an existing store with different settings is an error, so results of
    different runs never mix.
    """

    TABLES = ("CREATE TABLE IF NOT EXISTS spectra (expression TEXT PRIMARY KEY, record TEXT)",)
    WHAT = "spectrum store"
    HINT = "use another file or remove it"

    def __init__(self, path: str | os.PathLike, settings: dict | None = None):
        super().__init__(path, settings)

    def __contains__(self, expression: str) -> bool:
        query = "SELECT 1 FROM spectra WHERE expression=?"
        return self._db.execute(query, (expression,)).fetchone() is not None

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM spectra").fetchone()[0]

    def add(self, record: SpectrumRecord) -> None:
        """Store one record (its own transaction)."""
        self.add_many([record])

    def add_many(self, records: Iterable[SpectrumRecord]) -> None:
        """Store records in one transaction: all or none survive a kill."""
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO spectra VALUES (?, ?)",
                [(r.expression, r.model_dump_json()) for r in records],
            )

    def get(self, expression: str) -> SpectrumRecord:
        query = "SELECT record FROM spectra WHERE expression=?"
        row = self._db.execute(query, (expression,)).fetchone()
        if row is None:
            raise ActError(f"{expression!r} is not in {self.path}")
        return SpectrumRecord.model_validate_json(row[0])

    def records(self) -> Iterator[SpectrumRecord]:
        for (text,) in self._db.execute("SELECT record FROM spectra ORDER BY rowid"):
            yield SpectrumRecord.model_validate_json(text)

    def export_json(self, path: str | os.PathLike) -> None:
        """Write ``{expression: {"Fisher log eigenvalue CDF": [...], ...}}`` (the
        Act-Bench key), atomically."""
        table = {
            r.expression: {
                "Fisher log eigenvalue CDF": r.cdf,
                "valid": r.valid,
                "reason": r.reason,
                "num_weights": r.num_weights,
            }
            for r in self.records()
        }
        write_atomic(Path(path), json.dumps(table))


def spectra_for_activations(
    make_model: ModelFactory,
    expressions: Iterable[str],
    inputs: Tensor,
    targets: Tensor | None = None,
    *,
    store: str | os.PathLike | SpectrumStore | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    normalize: bool = False,
    stack: int | None = None,
    quantiles: bool = False,
    **spectrum_options,
) -> dict[str, SpectrumRecord]:
    """Spectra of ``make_model(activation)`` for every expression, same weights each.

    ``make_model``
        builds the architecture around an activation module.
    ``expressions``
        activation functions as actcore expressions (checked up front).
    ``inputs``, ``targets``
        the batch (see :func:`actfim.kfac_spectrum`).
    ``store``
        a SQLite file (or open store) to save to and resume from.
    ``seed``
        seed of the initial weights and of the label draws.
    ``device``
        where to build the model (default: the inputs' device).
    ``normalize``
        the normalised activations (mean 0, variance 1 under N(0, 1)); a function that
        cannot be normalised is recorded invalid.
    ``stack``
        functions computed together in one pass (:mod:`actfim.stacked`); None chooses
        by the model's size, 1 computes one at a time. Models whose samples interact
        (BatchNorm or dropout in train mode) are always done one at a time.
    ``quantiles``
        also keep each function's quantile functions (:func:`actfim.fisher_quantiles`).
    ``spectrum_options``
        passed to :func:`actfim.kfac_spectrum` (``fisher``, ...).

    A function whose model cannot be built or whose spectrum is not finite is recorded
    as invalid with the reason; it never stops the run.
    """
    expressions = list(dict.fromkeys(str(parse(e)) for e in expressions))
    options = FisherOptions.of(seed=seed, **spectrum_options)  # checked once, up front
    device = torch.device(device) if device is not None else inputs.device
    settings = {
        "seed": seed,
        "batch": list(inputs.shape),
        **({"normalize": True} if normalize else {}),
        **({"quantiles": True} if quantiles else {}),
        **{k: str(v) for k, v in sorted(spectrum_options.items())},
    }
    opened = not isinstance(store, SpectrumStore) and store is not None
    db = SpectrumStore(store, settings) if opened else store
    try:
        job = _Job.prepare(make_model, inputs, targets, seed, device, normalize, options,
                           quantiles)
        size = _stack(job.reference, inputs.to(device), stack, options.mode)
        results = {}
        todo = [e for e in expressions if db is None or e not in db]
        if db is not None:
            results.update({e: db.get(e) for e in expressions if e in db})
        with Progress(total=len(todo), desc="fisher spectra", unit="fn",
                      disable=not progress) as bar:
            for start in range(0, len(todo), size):
                records = job.run(todo[start : start + size])
                if db is not None:
                    db.add_many(records)
                results.update((r.expression, r) for r in records)
                bar.update(len(records))
        return {e: results[e] for e in expressions}
    finally:
        if opened:
            db.close()


def activation_spectra(
    make_model: ModelFactory,
    expressions: Iterable[str],
    inputs: Tensor,
    targets: Tensor | None = None,
    *,
    seed: int = 0,
    device: str | torch.device | None = None,
    **spectrum_options,
) -> Iterator[tuple[str, Spectrum]]:
    """Each expression's whole :class:`Spectrum` (every layer's log-eigenvalues), one
    function at a time, on the weights :func:`spectra_for_activations` gives it: for
    features other than the stored CDF (other bins, per-layer statistics). Expressions
    and options are checked when called, before any spectrum is computed; the spectra come
    as the iterator is read."""
    expressions = list(expressions)
    for expression in expressions:
        parse(expression)  # an unknown name is refused now, not after hours of spectra
    options = FisherOptions.of(seed=seed, **spectrum_options)
    device = torch.device(device) if device is not None else inputs.device
    job = _Job.prepare(make_model, inputs, targets, seed, device, False, options, False)
    return ((expression, job.spectrum(expression)) for expression in expressions)


def _stack(reference: nn.Module, inputs: Tensor, stack: int | None, mode: str) -> int:
    if stack is not None and stack < 1:
        raise ActError(f"stack must be at least 1, got {stack}")
    if stack == 1 or mixing_module(reference, mode) is not None:
        return 1
    return stack or functions_per_pass(reference, inputs)


class _Job:
    """Spectra of a group of functions: stacked in one pass when there are several,
    one at a time when alone or when the stacked model cannot be built."""

    def __init__(self, make_model, reference, inputs, targets, seed, device, normalize,
                 options: FisherOptions, quantiles: bool):
        self.make_model, self.reference = make_model, reference
        self.inputs, self.targets = inputs, targets
        self.seed, self.device = seed, device
        self.normalize, self.options = normalize, options
        self.quantiles = quantiles  # records keep the quantile functions too

    @classmethod
    def prepare(cls, make_model, inputs, targets, seed, device, normalize,
                options: FisherOptions, quantiles: bool) -> _Job:
        """A job whose models take the weights of a reference build from ``seed``."""
        reference = _build(make_model, nn.Identity(), seed, device)
        return cls(make_model, reference, inputs, targets, seed, device, normalize, options,
                   quantiles)

    def run(self, names: list[str]) -> list[SpectrumRecord]:
        records = {}
        if self.normalize:
            for name in names:
                try:
                    normalization(name)
                except ActError as err:
                    records[name] = SpectrumRecord(expression=name, valid=False,
                                                   reason=str(err))
        group = [n for n in names if n not in records]
        if len(group) == 1:
            records[group[0]] = self.one(group[0])
        elif group:
            try:
                model = self.build(StackedActivation(group, normalize=self.normalize))
            except ActError:
                raise
            except Exception:
                records.update((n, self.one(n)) for n in group)
            else:
                spectra = stacked_spectra(model, self.inputs, self.targets, self.options,
                                          stacks=len(group))
                records.update(zip(group, SpectrumRecord.from_stacked(group, spectra,
                                                                      self.quantiles)))
        return [records[n] for n in names]

    def build(self, activation: nn.Module) -> nn.Module:
        model = _build(self.make_model, activation, self.seed, self.device)
        _copy_weights(self.reference, model)
        return model

    def one(self, expression: str) -> SpectrumRecord:
        start = time.perf_counter()
        record = SpectrumRecord.from_spectrum(expression, self.spectrum(expression),
                                              self.quantiles)
        record.seconds = time.perf_counter() - start
        return record

    def spectrum(self, expression: str) -> Spectrum:
        """One function's spectrum; a model that cannot be built is an invalid one."""
        try:
            activation = to_module(expression, normalize=self.normalize)
            model = self.build(activation)
        except ActError:
            raise
        except Exception as err:
            return Spectrum(layers=[], valid=False,
                            reason=f"building the model failed: {type(err).__name__}: {err}")
        return kfac_spectrum(model, self.inputs, self.targets, self.options)


def _build(make_model: ModelFactory, activation: nn.Module, seed: int, device) -> nn.Module:
    with seeded(seed, device):
        return make_model(activation).to(device)


def _copy_weights(source: nn.Module, target: nn.Module) -> None:
    """Copy every parameter and buffer of ``source`` that ``target`` has (same shape)."""
    theirs = source.state_dict()
    mine = target.state_dict()
    shared = {k: v for k, v in theirs.items() if k in mine and mine[k].shape == v.shape}
    target.load_state_dict(shared, strict=False)
