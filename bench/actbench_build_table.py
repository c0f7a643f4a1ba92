"""Build (or resume) a shipped table and install it as package data.

    .venv-dev/bin/python bench/actbench_build_table.py [--table NAME] [--build-dir DIR]
        [--workers N] [--preview]

Runs ``act bench build --task TASK --space 'binary(unary(x),unary(x))' --seeds 3`` into
``--build-dir`` (default /work/actbench-build; its work store ``NAME.json.gz.work.sqlite``
keeps every finished unit, so this can be stopped and rerun at any time). When the table
is complete it copies the table and its card into ``packages/actbench/src/actbench/data/``
and draws ``docs/NAME.png``; while it is not, ``--preview`` draws the finished rows into
``docs/NAME-partial.png``. The build's wall and CPU time are in the card.

Tables: ``act-bench-digits-mlp`` (task ``mlp-digits``, 54 minutes one function at a time
on 2 cores), ``act-bench-fashion-mlp3`` (task ``mlp3-fashion-mnist``, stacks of 32) and
``act-bench-fashion-allconv`` (task ``allconv-fashion-mnist``, one function at a time: a
CNN does not gain from stacks on a CPU; about 20 hours on 2 cores, across sittings).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from actbench.shipped import SCHEMA, SHIPPED

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "packages/actbench/src/actbench/data"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", choices=sorted(SHIPPED), default="act-bench-fashion-mlp3")
    parser.add_argument("--build-dir", type=Path, default=Path("/work/actbench-build"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--preview", action="store_true",
                        help="only draw the rows finished so far")  # fmt: skip
    args = parser.parse_args()
    name = args.table
    out = args.build_dir / f"{name}.json.gz"
    figure = [sys.executable, str(ROOT / "bench/actbench_build_figure.py")]
    if args.preview:
        return subprocess.call([*figure, "--running", str(out),
                                str(ROOT / f"docs/{name}-partial.png")])  # fmt: skip
    act = Path(sys.executable).with_name("act")
    status = subprocess.call([str(act), "bench", "build", "--task", SHIPPED[name].task,
                              "--space", SCHEMA, "--seeds", "3", "--workers",
                              str(args.workers), "--out", str(out)])  # fmt: skip
    if status != 0:
        return status
    DATA.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out, DATA / out.name)
    shutil.copyfile(out.with_name(f"{name}.card.json"), DATA / f"{name}.card.json")
    return subprocess.call([*figure, str(DATA / out.name), str(ROOT / f"docs/{name}.png")])


if __name__ == "__main__":
    sys.exit(main())
