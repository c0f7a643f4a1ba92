"""Replay on benchmark tables: the protocol, the statistics, and regressors vs random."""

from __future__ import annotations

import numpy as np
import pytest

from actcore import ActError
from actsearch import replay, replay_summary
from actsearch.features import table_features


@pytest.fixture(scope="module")
def problem(smooth, cache):
    return replay.prepare(smooth, table_features(smooth), "union", cache=cache)


@pytest.mark.parametrize(
    ("regressors", "trials", "budget"),
    [(("knr", "svr"), 100, 40), (("rfr",), 80, 30), (("gpr",), 40, 30)],  # slow ones: less
)
def test_every_regressor_beats_random_search(problem, regressors, trials, budget):
    """Paired trials (same ReLU + 7 random starts): the best accuracy found within the
    budget beats random search's by more than four standard errors of the paired
    difference, and in most trials (measured here: 6.5 to 10.5 standard errors and 86% to
    93% of the trials, on this machine and on an emulated other CPU, where UMAP lays the
    points out differently): a wide margin, not a borderline p-value."""
    algorithms = [replay.Algorithm("surrogate", r, "union") for r in regressors]
    baseline = replay.Algorithm("random", "knr", "union")
    results = replay.replay({"union": problem}, [baseline, *algorithms], trials=trials,
                            budget=budget, jobs=2, progress=False)
    random_best = np.array([t.best[-1] for t in results[baseline]])
    for algorithm in algorithms:
        gain = np.array([t.best[-1] for t in results[algorithm]]) - random_best
        standard_error = gain.std(ddof=1) / np.sqrt(trials)
        assert gain.mean() > 4 * standard_error, (algorithm.label, gain.mean(), standard_error)
        assert (gain > 0).mean() > 0.6, (algorithm.label, (gain > 0).mean())


def test_trial_follows_the_protocol(problem, smooth):
    trial = replay.run_trial(problem, replay.Algorithm("surrogate", "knr", "union"), 20, seed=3)
    assert problem.names[trial.rows[0]] == "relu(x)"
    assert len(set(trial.rows.tolist())) == 20  # nothing evaluated twice
    assert problem.candidates[trial.rows].all()  # surrogates search filtered candidates
    # best-so-far recomputed independently from the table by name
    accs = [smooth[problem.names[r]].val_accuracy for r in trial.rows]
    assert np.allclose(trial.best, [max(accs[: i + 1]) for i in range(len(accs))])
    # the same seed replays the same trial; another seed starts elsewhere
    again = replay.run_trial(problem, replay.Algorithm("surrogate", "knr", "union"), 20, seed=3)
    assert (again.rows == trial.rows).all()
    other = replay.run_trial(problem, replay.Algorithm("surrogate", "knr", "union"), 20, seed=4)
    assert (other.rows != trial.rows).any()
    # Spearman is measured at every surrogate step and lies in [-1, 1]
    rho = trial.spearman[8:]
    assert np.isfinite(rho).all() and (np.abs(rho) <= 1).all()


def test_summary_counts_evaluations_like_a_plain_loop(problem):
    algorithm = replay.Algorithm("surrogate", "knr", "union")
    trials = [replay.run_trial(problem, algorithm, 25, seed=s) for s in range(4)]
    summary = replay_summary.summarise(problem, algorithm, trials)
    relu = problem.accuracy[problem.start]
    firsts = []
    for t in trials:
        hits = [i + 1 for i, b in enumerate(t.best) if b > relu]
        if hits:
            firsts.append(hits[0])
    assert summary.beat_relu_fraction == len(firsts) / 4
    assert summary.evals_to_beat_relu == pytest.approx(np.mean(firsts))
    assert summary.final_best_mean == pytest.approx(np.mean([t.best[-1] for t in trials]))


def test_interrupted_replay_resumes_from_saved_chunks(problem, tmp_path, monkeypatch):
    algorithm = replay.Algorithm("surrogate", "knr", "union")
    first = replay.replay({"union": problem}, [algorithm], trials=4, budget=12, jobs=1,
                          checkpoint=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.npz"))) >= 1

    def boom(*args, **kwargs):
        raise AssertionError("a saved chunk was recomputed")

    monkeypatch.setattr(replay, "_run_chunk", boom)
    again = replay.replay({"union": problem}, [algorithm], trials=4, budget=12, jobs=1,
                          checkpoint=tmp_path, progress=False)
    assert len(first[algorithm]) == 4
    for a, b in zip(first[algorithm], again[algorithm], strict=True):
        assert (a.rows == b.rows).all() and np.allclose(a.best, b.best)
    # saved trials of one table are never taken for another
    import dataclasses

    other = dataclasses.replace(problem, accuracy=problem.accuracy[::-1].copy())
    with pytest.raises(AssertionError, match="recomputed"):
        replay.replay({"union": other}, [algorithm], trials=4, budget=12, jobs=1,
                      checkpoint=tmp_path, progress=False)


def test_trials_take_the_embeddings_in_turn(problem, smooth, cache):
    """Several embeddings (seeds 0, 1): trial i runs on embedding i mod 2, so the figures
    do not rest on one layout; the first embedding is the one-embedding problem's."""
    from actsearch.embedding import embed

    features = table_features(smooth)
    two = replay.prepare(smooth, features, "union", cache=cache, embeddings=2)
    assert two.layouts.shape == (2, len(two.names), 2)
    assert np.array_equal(two.layouts[0], problem.layouts[0], equal_nan=True)
    assert np.array_equal(two.layouts[1][two.candidates],
                          embed(features, "union", seed=1, cache=False, progress=False))
    assert two.key != problem.key  # trials saved for one embedding are not taken for two
    algorithm = replay.Algorithm("surrogate", "knr", "union")
    trials = replay.replay({"union": two}, [algorithm], trials=4, budget=16, seed=5, jobs=1,
                           progress=False)[algorithm]
    for i, trial in enumerate(trials):
        own = replay.run_trial(two, algorithm, 16, seed=5 + i, layout=i % 2)
        assert np.array_equal(trial.rows, own.rows)
    # the surrogate's picks follow the layout: on embedding 0 the odd trials go elsewhere
    assert any(not np.array_equal(trials[i].rows,
                                  replay.run_trial(two, algorithm, 16, 5 + i, layout=0).rows)
               for i in (1, 3))


def test_relu_found_by_its_outputs_when_not_named(tmp_path):
    from synthetic import record

    from actbench.tables import Table

    names = ["tanh(x)", "max(zero(x),identity(x))", "elu(x)"]
    table = Table({n: record(0.5, [], []) for n in names})
    problem = replay.prepare(table, table_features(table), "outputs", cache=tmp_path)
    assert problem.start == 1


@pytest.mark.parametrize("fields, message", [
    (("surrogate", "knn", "union"), "unknown regressor 'knn'"),
    (("surrogat", "knr", "union"), "unknown strategy 'surrogat'"),
    (("surrogate", "knr", "fisher-cdf"), "unknown feature set 'fisher-cdf'"),
])
def test_an_algorithm_with_an_unknown_name_is_refused_when_made(fields, message):
    with pytest.raises(ActError, match=message):
        replay.Algorithm(*fields)
