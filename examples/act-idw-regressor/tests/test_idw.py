"""The example plugin is discovered through its entry point and searches by name."""

from __future__ import annotations

import numpy as np
from act_idw import InverseDistance

from actbench.tables import Table, TableRecord
from actcore.plugins import registry
from actsearch import replay
from actsearch.features import table_features
from actsearch.hookspecs import REGRESSORS


def test_entry_point_registers_idw():
    assert registry(REGRESSORS).provider("idw") == "idw"


def test_prediction_matches_a_hand_computed_weighted_mean():
    model = InverseDistance().fit([[0.0, 0.0], [2.0, 0.0]], [1.0, 3.0])
    # at (1, 1): both points at distance sqrt(2) -> plain mean; at a training point: exact
    assert np.allclose(model.predict([[1.0, 1.0], [2.0, 0.0]]), [2.0, 3.0])
    # at (0.5, 0): weights 1/0.25 and 1/2.25
    w = np.array([1 / 0.25, 1 / 2.25])
    assert np.allclose(model.predict([[0.5, 0.0]]), (w @ [1.0, 3.0]) / w.sum())


def test_replay_with_idw_by_name(tmp_path):
    unary = ["relu", "tanh", "sigmoid", "swish", "elu", "abs", "softplus", "arctan"]
    names = ["relu(x)", *(f"add({u}(x),{v}(x))" for i, u in enumerate(unary)
                          for v in unary[i:])]
    rng = np.random.default_rng(0)
    records = {}
    for n in names:
        a = float(rng.uniform(0.2, 0.9))
        records[n] = TableRecord(
            train_accuracy=a, val_accuracy=a, train_loss=1, val_loss=1, test_accuracy=a,
            test_loss=1,
        )
    table = Table(records)
    problem = replay.prepare(table, table_features(table), "outputs", cache=tmp_path)
    algorithm = replay.Algorithm("surrogate", "idw", "outputs")
    results = replay.replay({"outputs": problem}, [algorithm], trials=3, budget=15, jobs=1,
                            progress=False)
    for trial in results[algorithm]:
        assert len(set(trial.rows.tolist())) == 15
        assert trial.best[-1] == max(problem.accuracy[trial.rows])
