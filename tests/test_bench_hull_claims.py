"""bench/actbench_hull_claims.py reads the hull paper's claims (a)-(d) from a comparison's
results at any epoch of their curves, and refuses a grid that lacks an activation."""

from __future__ import annotations

from pathlib import Path

import pytest

from actbench import Epoch, Result
from actbench.compare import load_results
from actcore import ActError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def hull_claims(bench_script):
    return bench_script("actbench_hull_claims")


def _run(name: str, seed: int, tests: list[float]) -> Result:
    """A finished run whose test accuracy after epoch e is ``tests[e - 1]``."""
    history = [Epoch(epoch=e + 1, train_loss=1.0, val_accuracy=t, val_loss=1.0,
                     test_accuracy=t, test_loss=1.0) for e, t in enumerate(tests)]
    return Result(task="t", activation=name, seed=seed, status="ok", train_accuracy=1.0,
                  val_accuracy=tests[-1], test_accuracy=tests[-1], train_loss=1.0,
                  val_loss=1.0, test_loss=1.0, runtime_s=1.0, epochs=len(tests),
                  history=history)  # fmt: skip


def test_the_six_epoch_grid_reads_as_its_page_reports(hull_claims):
    """The committed 6-epoch LeNet-5 grid: the page's verdicts (best hull 82.52 against
    ReLU's 83.75, -1.23 points), with each one's range over its three seeds."""
    results = load_results(ROOT / "packages/actbench/docs/lenet5-fashion-mnist-hulls.jsonl")
    hull_claims.seeds_per_activation(results)
    a, b, c, d = hull_claims.claims(hull_claims.accuracies(results, None))
    assert a == "no: relu(x) 83.75" and b == "2 of 4"
    assert c.startswith("-1.23 (affine_n(identity(x),relu(x)) 82.52 [")
    hull, relu = ([100 * r.test_accuracy for r in results if r.activation == name]
                  for name in ("affine_n(identity(x),relu(x))", "relu(x)"))
    assert c.endswith(f"[{min(hull):.2f}, {max(hull):.2f}] vs relu(x) 83.75 "
                      f"[{min(relu):.2f}, {max(relu):.2f}])")
    assert d == "no: 82.26 vs 83.75"


def test_claims_read_the_curves_at_the_epoch_asked_for(hull_claims):
    """ReLU leads after epoch 1; the affine hull of {id, ReLU, tanh} overtakes it by the
    end; affine beats convex on every base set at the end only."""
    final = {name: 0.80 for name in hull_claims.GRID}
    final |= {"relu(x)": 0.85, "leakyrelu(x)": 0.84, "convex_n(identity(x),relu(x))": 0.845,
              "affine_n(identity(x),relu(x),tanh(x))": 0.86}
    for bases in hull_claims.BASE_SETS:
        final[f"affine_n({bases})"] = max(final[f"affine_n({bases})"],
                                          final[f"convex_n({bases})"] + 0.001)
    results = [_run(name, seed, [0.85 * top if name.startswith("affine") else 0.95 * top,
                                 top + 0.001 * seed])
               for name, top in final.items() for seed in range(3)]  # fmt: skip
    early = hull_claims.claims(hull_claims.accuracies(results, 1))
    late = hull_claims.claims(hull_claims.accuracies(results, 2))
    assert early[0] == "no: relu(x) 80.75" and early[1] == "0 of 4"
    assert late[0] == "yes: affine_n(identity(x),relu(x),tanh(x)) 86.10"
    assert late[1] == "4 of 4"
    assert late[2] == ("+1.00 (affine_n(identity(x),relu(x),tanh(x)) 86.10 [86.00, 86.20] "
                       "vs relu(x) 85.10 [85.00, 85.20])")
    assert late[3] == "yes: 84.60 vs 84.10"


def test_a_grid_without_an_activation_is_refused_by_name(hull_claims):
    results = [_run(name, 0, [0.8]) for name in hull_claims.GRID if name != "tanh(x)"]
    with pytest.raises(ActError, match=r"no runs of 1 of the grid's 12 activations \(tanh\(x\)\)"):
        hull_claims.seeds_per_activation(results)


def test_windows_take_each_runs_ten_epoch_median_then_the_seeds_median(hull_claims,
                                                                       capsys):
    """A run's window median ignores a single epoch's swing; the row is the median over
    the activation's seeds; a run too short for a window leaves that cell out."""
    swing = [0.80] * 10 + [0.90] * 9 + [0.10]  # epoch 20 swings to 10%
    runs = [_run("relu(x)", 0, swing), _run("relu(x)", 1, [t + 0.02 for t in swing]),
            _run("relu(x)", 2, [0.70] * 20), _run("tanh(x)", 0, [0.85] * 10)]
    hull_claims.windows(runs, [1, 11])
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "| epochs | 1–10 | 11–20 |"
    assert table[2] == "| relu(x) (3 seeds) | 80.00 | 90.00 |"
    assert table[3] == "| tanh(x) (1 seed) | 85.00 |  |"


def test_seeds_option_reads_only_the_first_seeds(hull_claims, tmp_path, monkeypatch,
                                                 capsys):
    from actbench.compare import save_results

    path = tmp_path / "grid.jsonl"
    save_results([_run("relu(x)", seed, [0.8 + 0.01 * seed] * 10) for seed in range(3)],
                 path)
    monkeypatch.setattr("sys.argv", ["hull_claims", "--results", str(path), "--seeds", "2",
                                     "--windows", "1"])
    hull_claims.main()
    assert "| relu(x) (2 seeds) | 80.50 |" in capsys.readouterr().out


def test_smoothed_claims_take_each_runs_median_over_the_last_ten_epochs(hull_claims):
    """One epoch's swing decides (a) and (c) alone; the ten-epoch medians ignore it. A
    window that would start before epoch 1 is refused."""
    steady = {name: 0.80 for name in hull_claims.GRID} | {"relu(x)": 0.85}
    results = [_run(name, 0, [top] * 11 + [0.90 if name == "tanh(x)" else top])
               for name, top in steady.items()]
    assert hull_claims.claims(hull_claims.accuracies(results, 12))[0] == "no: tanh(x) 90.00"
    smoothed = hull_claims.claims(hull_claims.accuracies(results, 12, smoothed=True))
    assert smoothed[0] == "no: relu(x) 85.00"
    assert smoothed[2].startswith("-5.00 (") and smoothed[2].endswith("vs relu(x) 85.00)")
    assert hull_claims.accuracies(results, None, smoothed=True)["tanh(x)"] == [80.0]
    with pytest.raises(ActError, match="ending at epoch 9 needs epoch 10 or later"):
        hull_claims.accuracies(results, 9, smoothed=True)


def test_settling_finds_the_lowest_loss_and_the_late_moves(hull_claims):
    """Lowest training loss at epoch 3 of 6; the second half's validation moves 2, 4 (in
    points) have the median 3."""
    run = _run("relu(x)", 1, [0.5, 0.5, 0.5, 0.80, 0.82, 0.78])
    losses = [0.9, 0.7, 0.5, 0.6, 0.65, 0.7]
    run.history = [e.model_copy(update={"train_loss": x}) for e, x in zip(run.history, losses)]
    assert hull_claims.settling(run) == ("seed 1: lowest training loss 0.500 after epoch 3, "
                                         "0.700 at the end; validation moves 3.00 points an "
                                         "epoch in the second half")
    short = _run("relu(x)", 0, [0.5, 0.6])  # a second half of one epoch has no move
    assert hull_claims.settling(short).endswith("too short for a second half to move")


def test_learned_coefficients_decode_each_sites_recorded_parameters(hull_claims):
    """A convex hull's coefficients are the softmax of its raw parameters, an affine
    hull's sum to one around their mean: computed here by hand."""
    import math

    convex = _run("convex_n(identity(x),relu(x))", 0, [0.9]).model_copy(
        update={"learned": {"1": {"root.raw": [-0.5, 0.5]}, "8": {"root.raw": [0.0, 0.0]}}})
    share = math.exp(-0.5) / (math.exp(-0.5) + math.exp(0.5))
    found = hull_claims.learned_coefficients(convex)
    assert found["1"] == pytest.approx([share, 1 - share]) and found["8"] == [0.5, 0.5]
    affine = convex.model_copy(update={"activation": "affine_n(identity(x),relu(x))"})
    assert hull_claims.learned_coefficients(affine)["1"] == pytest.approx([0.0, 1.0])


def test_leads_pair_each_hulls_seeds_with_the_best_customary_activations(hull_claims):
    """Leads are seed minus same seed against the customary activation with the best
    median (tanh here, though ReLU has the best single run); a seed the rival lacks is
    left out; the hull with the largest median lead comes first."""
    tops = {name: [0.80, 0.80, 0.80] for name in hull_claims.GRID}
    tops["relu(x)"] = [0.70, 0.70, 0.95]
    tops["tanh(x)"] = [0.85, 0.86, 0.87]
    tops["affine_n(identity(x),tanh(x))"] = [0.86, 0.855, 0.89]
    tops["convex_n(relu(x),tanh(x))"] = [0.88, 0.88, 0.88, 0.99]  # seed 3: tanh has none
    results = [_run(name, seed, [top]) for name, seeds in tops.items()
               for seed, top in enumerate(seeds)]
    rows = hull_claims.leads(hull_claims.seed_accuracies(results, None))
    assert rows[0] == ("| convex_n(relu(x),tanh(x)) | tanh(x) | +2.00 | 0: +3.00, 1: +2.00, "
                       "2: +1.00 | 3 of 3 |")
    assert rows[1] == ("| affine_n(identity(x),tanh(x)) | tanh(x) | +1.00 | 0: +1.00, "
                       "1: -0.50, 2: +2.00 | 2 of 3 |")
    assert len(rows) == 8 and rows[-1].endswith("| 0 of 3 |")


def test_claim_e_counts_the_sites_where_each_kind_of_hull_is_monotonic(hull_claims):
    """aff({id, ReLU}) with coefficients (-0.5, 1.5) is -x/2 below 0 and x above: a V, not
    monotonic; (0, 1) is ReLU, monotonic; a convex hull is monotonic whatever it learns."""
    affine = _run("affine_n(identity(x),relu(x))", 0, [0.9]).model_copy(
        update={"learned": {"1": {"root.raw": [-1.0, 1.0]}, "8": {"root.raw": [-0.5, 0.5]}}})
    convex = affine.model_copy(update={"activation": "convex_n(identity(x),relu(x))"})
    assert hull_claims.monotonic_sites(affine) == {"1": False, "8": True}
    assert hull_claims.monotonic_sites(convex) == {"1": True, "8": True}
    hulls = [(r.activation, hull_claims.monotonic_sites(r)) for r in (affine, convex)]
    assert hull_claims.claim_e(hulls) == (
        "convex_n monotonic on [-5, 5] at 2 of 2 sites; affine_n monotonic on [-5, 5] at 1 "
        "of 2 sites")
