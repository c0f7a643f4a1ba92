"""``act fim``: Fisher spectra of named models from the command line.

Models and datasets come from the registry (actbench provides them); without a dataset
the batch is random N(0, 1) inputs of ``--input-shape``.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch
from torch import Tensor, nn

from actcore import parse
from actcore.activation_kinds import DEFAULT_KINDS
from actcore.atomic import make_parent
from actcore.cli import add_device, add_group, comma_list
from actcore.console import log
from actcore.device import resolve_device
from actcore.errors import ActError
from actcore.lock import exclusive
from actcore.model_source import build_model
from actcore.plot import figure_path
from actcore.plugins import plugin_manager
from actcore.threads import seeded
from actcore.versions import install_hint
from actfim.batch import spectra_for_activations
from actfim.features import fisher_cdf
from actfim.spectrum import kfac_spectrum


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    commands = add_group(subparsers, "fim", "K-FAC Fisher spectra (actfim)")

    spectrum = commands.add_parser(
        "spectrum", help="per-layer spectrum of one model and activation"
    )
    _common(spectrum)
    spectrum.add_argument("--activation", metavar="EXPR",
                          help="activation expression, e.g. 'relu(x)' (needed for act's zoo; "
                          "an outside model keeps its own without it)")
    spectrum.add_argument("--plot", type=figure_path, metavar="FILE.png",
                          help="save a picture of the spectra")
    spectrum.set_defaults(run=run_spectrum)

    batch = commands.add_parser(
        "batch", help="spectra of many activations (resumable SQLite store)"
    )
    _common(batch)
    batch.add_argument("activations", nargs="*", metavar="EXPR",
                       help="activation expressions")
    batch.add_argument("--from-file", type=Path, metavar="FILE",
                       help="read expressions from FILE, one a line")
    batch.add_argument("--store", type=Path, required=True, metavar="FILE.sqlite",
                       help="results; an interrupted run resumes from here")
    batch.add_argument("--export", type=Path, metavar="FILE.json",
                       help="also write {expression: {'Fisher log eigenvalue CDF': ...}}")
    batch.set_defaults(run=run_batch)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True,
        help="act's zoo (allcnnc, resnet56, ...), a torchvision model (resnet18), "
        "timm:NAME, or your own package.module:callable",
    )
    parser.add_argument(
        "--replace", type=comma_list, default=list(DEFAULT_KINDS), metavar="KIND,...",
        help="which activations of an outside model --activation replaces (default: "
        f"{','.join(DEFAULT_KINDS)}; 'hidden' for all)",
    )
    parser.add_argument(
        "--mode", choices=["train", "eval"], default="train",
        help="train: batch statistics in BatchNorm (as in training; default); eval: running "
        "statistics. The model's state is restored either way",
    )
    parser.add_argument("--dataset", help="dataset name (from actbench) for the batch")
    parser.add_argument("--data-root", type=Path, help="where the dataset lives")
    parser.add_argument("--download", action="store_true", help="download the dataset")
    parser.add_argument("--input-shape", type=_shape, metavar="C,H,W",
                        help="random N(0,1) inputs of this shape (without --dataset)")
    parser.add_argument("--classes", type=int, help="number of outputs (without --dataset)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--fisher", choices=["mc", "empirical", "type2"], default="mc")
    parser.add_argument("--mc-samples", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="weights, batch and labels")
    parser.add_argument("--float64", action="store_true", help="float64 factors")
    add_device(parser)


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(p) for p in text.replace("x", ",").split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a shape: {text!r} (use e.g. 3,32,32)") from None
    if not shape or min(shape) <= 0:
        raise argparse.ArgumentTypeError(f"not a shape: {text!r} (use e.g. 3,32,32)")
    return shape


def load_batch(args: argparse.Namespace) -> tuple[Tensor, Tensor | None, tuple, int]:
    """Inputs, targets (or None), input shape and number of classes for the command."""
    if args.batch_size < 1:
        raise ActError(f"--batch-size must be at least 1, got {args.batch_size}")
    generator = torch.Generator().manual_seed(args.seed)
    if args.dataset is None:
        if args.input_shape is None or args.classes is None:
            raise ActError("give --dataset NAME, or --input-shape and --classes for "
                           "random inputs")
        inputs = torch.randn(args.batch_size, *args.input_shape, generator=generator)
        return inputs, None, args.input_shape, args.classes
    # datasets come from a plugin (actbench's) through the hook actfim declares
    batch = plugin_manager().hook.act_dataset_batch(
        dataset=args.dataset, size=args.batch_size, seed=args.seed, root=args.data_root,
        download=args.download)
    if batch is None:
        raise ActError(f"--dataset needs actbench's datasets: {install_hint('actbench')}; "
                       "or give --input-shape and --classes for random inputs")
    for given, own, option in ((args.input_shape, tuple(batch.input_shape), "--input-shape"),
                               (args.classes, int(batch.num_classes), "--classes")):
        if given is not None and given != own:
            raise ActError(f"{option} {given} contradicts --dataset {args.dataset} ({own}); "
                           f"leave {option} out with a dataset")
    return batch.inputs, batch.targets, tuple(batch.input_shape), int(batch.num_classes)


def _device(args: argparse.Namespace) -> torch.device:
    return resolve_device(args.device)


def _options(args: argparse.Namespace) -> dict:
    if args.fisher == "empirical" and args.dataset is None:
        raise ActError("--fisher empirical needs true labels: give --dataset")
    return {
        "fisher": args.fisher,
        "mc_samples": args.mc_samples,
        "dtype": torch.float64 if args.float64 else torch.float32,
        "mode": args.mode,
    }


def run_spectrum(args: argparse.Namespace) -> int:
    activation = None if args.activation is None else str(parse(args.activation))
    if args.plot is not None:
        make_parent(args.plot)  # a folder that cannot be made fails before the spectrum
    inputs, targets, shape, classes = load_batch(args)
    options = _options(args)
    device = _device(args)
    with seeded(args.seed, device):
        model: nn.Module = build_model(args.model, activation, shape, classes,
                                       replace=args.replace).to(device)
    spectrum = kfac_spectrum(model, inputs.to(device), _to(targets, device),
                             seed=args.seed, progress=True, **options)
    own = activation or "its own activations"
    print(f"{args.model} with {own}: {args.fisher} Fisher, {args.mode} mode, batch "
          f"{len(inputs)}, {spectrum.seconds:.2f} s")
    header = ("layer", "kind", "weights", "#eig", "min", "median", "max", "clamped")
    rows = []
    for layer in spectrum.layers:
        s = layer.summary()
        rows.append((s["name"], s["kind"], f"{s['weights']:,}", f"{s['eigenvalues']:,}",
                     f"{s['min']:.2f}", f"{s['median']:.2f}", f"{s['max']:.2f}",
                     str(s["clamped"])))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths))))
    kinds: dict[str, list] = {}
    for module in spectrum.skipped:
        kinds.setdefault(module.kind, []).append(module)
    for kind, modules in kinds.items():
        names = ", ".join(m.name for m in modules[:6]) + (", ..." if len(modules) > 6 else "")
        print(f"not in the spectrum: {len(modules)} {kind} module(s), "
              f"{sum(m.parameters for m in modules):,} parameters ({names})")
    if spectrum.silent:
        weights = sum(layer.num_weights for layer in spectrum.silent)
        print(f"silent at initialisation, left out of the spectrum and its features: "
              f"{len(spectrum.silent)} layer(s), {weights:,} weights")
        for layer in spectrum.silent:
            print(f"  {layer}")
    if spectrum.valid:
        print(f"Fisher CDF feature length: {fisher_cdf(spectrum).size}")
    else:
        print(f"INVALID spectrum: {spectrum.reason}")
    if args.plot is not None:
        from actfim.plot import plot_spectrum

        plot_spectrum(spectrum, args.plot, title=f"{args.model}, {own} ({args.mode} mode)")
        log.info(f"plot: {args.plot}")
    return 0 if spectrum.valid else 1


def run_batch(args: argparse.Namespace) -> int:
    expressions = list(args.activations)
    if args.from_file is not None:
        try:
            lines = args.from_file.read_text().splitlines()
        except OSError as err:
            raise ActError(f"cannot read {args.from_file}: {err.strerror}") from None
        expressions += [line.strip() for line in lines if line.strip()]
    if not expressions:
        raise ActError("give activation expressions or --from-file FILE")
    if args.export is not None:
        make_parent(args.export)  # a folder that cannot be made fails before the spectra
    inputs, targets, shape, classes = load_batch(args)
    device = _device(args)
    with exclusive(args.store, "the spectrum store"):  # one batch job per store at a time
        records = spectra_for_activations(
            lambda activation: build_model(args.model, lambda: copy.deepcopy(activation),
                                           shape, classes, replace=args.replace),
            expressions, inputs.to(device), _to(targets, device),
            store=args.store, seed=args.seed, device=device, **_options(args),
        )
    valid = sum(r.valid for r in records.values())
    print(f"{len(records)} functions, {valid} valid, {len(records) - valid} invalid; "
          f"store: {args.store}")
    if args.export is not None:
        from actfim.batch import SpectrumStore

        with SpectrumStore(args.store) as store:
            store.export_json(args.export)
        log.info(f"exported: {args.export}")
    return 0


def _to(tensor: Tensor | None, device: torch.device) -> Tensor | None:
    return None if tensor is None else tensor.to(device)
