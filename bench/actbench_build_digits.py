"""Build (or resume) the shipped ``act-bench-digits-mlp`` table and install it as package data.

    .venv-dev/bin/python bench/actbench_build_digits.py [--build-dir DIR] [--workers N]

Runs ``act bench build --task mlp-digits --space 'binary(unary(x),unary(x))' --seeds 3``
into ``--build-dir`` (default /work/actbench-build; its work store
``act-bench-digits-mlp.json.gz.work.sqlite`` keeps every finished unit, so this can be
stopped and rerun at any time). When the table is complete it copies the table and its
card into ``packages/actbench/src/actbench/data/`` and draws
``docs/act-bench-digits-mlp.png``; while it is not, ``--preview`` draws the finished rows
into ``docs/act-bench-digits-mlp-partial.png``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "packages/actbench/src/actbench/data"
NAME = "act-bench-digits-mlp"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=Path("/work/actbench-build"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--preview", action="store_true",
                        help="only draw the rows finished so far")  # fmt: skip
    args = parser.parse_args()
    out = args.build_dir / f"{NAME}.json.gz"
    figure = [sys.executable, str(ROOT / "bench/actbench_build_figure.py")]
    if args.preview:
        return subprocess.call([*figure, "--running", str(out),
                                str(ROOT / f"docs/{NAME}-partial.png")])  # fmt: skip
    act = Path(sys.executable).with_name("act")
    status = subprocess.call([str(act), "bench", "build", "--task", "mlp-digits", "--space",
                              "binary(unary(x),unary(x))", "--seeds", "3", "--workers",
                              str(args.workers), "--out", str(out)])  # fmt: skip
    if status != 0:
        return status
    DATA.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out, DATA / out.name)
    shutil.copyfile(out.with_name(f"{NAME}.card.json"), DATA / f"{NAME}.card.json")
    return subprocess.call([*figure, str(DATA / out.name), str(ROOT / f"docs/{NAME}.png")])


if __name__ == "__main__":
    sys.exit(main())
