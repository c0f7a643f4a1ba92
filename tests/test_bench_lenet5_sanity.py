"""The LeNet-5 sanity check's reading of the reference runs (bench/actbench_lenet5_sanity.py)
and the reference's refusal to resume a run with other shifts
(bench/actbench_lenet5_reference.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def sanity(bench_script):
    return bench_script("actbench_lenet5_sanity")  # it imports the reference's model


def _run(path: Path, seed: int, val: list[float], shifts: str | None) -> Path:
    with open(path, "w") as f:
        for epoch, accuracy in enumerate(val, 1):
            line = {"epoch": epoch, "seed": seed, "train_loss": 1.0 / epoch,
                    "val_accuracy": accuracy, "test_accuracy": accuracy - 1}
            f.write(json.dumps(line | ({"shifts": shifts} if shifts else {})) + "\n")
    return path


def test_reference_runs_are_grouped_by_their_shifts(tmp_path, sanity):
    paths = [_run(tmp_path / "crop-seed0.jsonl", 0, [70.0, 80.0], "crop"),
             _run(tmp_path / "seed0.jsonl", 0, [71.0, 81.0], None),  # before --shifts
             _run(tmp_path / "seed1.jsonl", 1, [72.0, 82.0], "affine")]
    sides = sanity.reference_curves(paths)
    assert list(sides) == ["reference (plain PyTorch)", "reference with act's shifts"]
    plain, crop = sides.values()
    assert sorted(plain) == [0, 1] and plain[1]["val"] == [72.0, 82.0]
    assert list(crop) == [0] and crop[0]["val"] == [70.0, 80.0]
    assert crop[0]["test"] == [69.0, 79.0] and crop[0]["loss"] == [1.0, 0.5]


def test_running_median_takes_full_windows_only(sanity):
    values = [float(v) for v in range(12)]
    values[5] = 100.0  # one wild epoch moves no window's median far
    smooth = sanity.running_median(values)
    assert len(smooth) == 12 - sanity.SMOOTHING + 1
    assert smooth == [5.0, 6.5, 7.5]  # (4 + 6) / 2, (6 + 7) / 2, (7 + 8) / 2


@pytest.mark.parametrize(("made_with", "asked"), [(None, "crop"), ("crop", "affine")])
def test_the_reference_refuses_to_resume_with_other_shifts(tmp_path, capsys, bench_script,
                                                           made_with, asked):
    reference = bench_script("actbench_lenet5_reference")
    out = _run(tmp_path / "run.jsonl", 0, [75.0], made_with)
    with pytest.raises(SystemExit) as stop:
        reference.main(["--out", str(out), "--shifts", asked])
    assert stop.value.code == 2
    assert f"was made with --shifts {made_with or 'affine'}, not {asked}" in \
        capsys.readouterr().err
