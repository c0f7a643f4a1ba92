import itertools

import numpy as np
import pytest

from actcore import ActError, Space, core_operators, parse

FOUR_NODE = [
    "binary(unary(unary(x)),unary(x))",
    "binary(unary(x),unary(unary(x)))",
    "n-ary(unary(x),unary(x),unary(x))",
    "unary(binary(unary(x),unary(x)))",
    "unary(unary(unary(unary(x))))",
]


def test_published_counts():
    assert Space("binary(unary(x),unary(x))").count() == 5103
    assert len(Space(*FOUR_NODE)) == 1_023_516


def test_core_set_sizes():
    assert len(core_operators()) == 38 and len(core_operators(extended=True)) == 42
    assert Space("unary(x)").count() == 27
    assert Space("unary(x)", extended=True).count() == 31


def test_iteration_order_index_and_getitem_agree():
    space = Space("binary(unary(x),relu(x))", "unary(x)", operators=["sigmoid", "add", "tanh"])
    names = [str(e) for e in space]
    assert names == [
        "add(tanh(x),relu(x))",
        "add(sigmoid(x),relu(x))",
        "tanh(x)",
        "sigmoid(x)",
    ]
    for i, name in enumerate(names):
        assert str(space[i]) == name and space.index(name) == i


def test_union_counts_overlaps_once_and_matches_brute_force():
    schemas = [
        "binary(unary(x),unary(x))",
        "add(relu(x),unary(x))",  # inside the first
        "binary(tanh(x),unary(x))",  # inside the first
        "max(unary(x),x)",  # disjoint shape
        "max(unary(x),x)",  # duplicate
    ]
    ops = ["add", "max", "relu", "tanh", "sigmoid"]
    space = Space(*schemas, operators=ops)
    names = [str(e) for e in space]
    assert len(names) == len(set(names)) == space.count() == 2 * 3 * 3 + 3
    brute = set()
    for schema in schemas:
        brute.update(str(e) for e in Space(schema, operators=ops))
    assert set(names) == brute
    assert [space.index(n) for n in names] == list(range(len(names)))


def test_partial_overlap_of_three_schemas():
    ops = ["add", "mul", "relu", "tanh", "sigmoid", "abs"]
    schemas = ["binary(relu(x),unary(x))", "add(unary(x),unary(x))", "binary(unary(x),tanh(x))"]
    space = Space(*schemas, operators=ops)
    brute = set()
    for schema in schemas:
        brute.update(str(e) for e in Space(schema, operators=ops))
    assert space.count() == len(brute) == len(list(space))


def test_sample_is_distinct_deterministic_and_in_space():
    space = Space("binary(unary(x),unary(x))", "add(relu(x),unary(x))")
    first = space.sample(200, seed=7)
    assert first == space.sample(200, seed=7)
    assert first != space.sample(200, seed=8)
    assert len(set(first)) == 200 and all(e in space for e in first)
    assert sorted(map(str, space.sample(len(space)))) == sorted(map(str, space))


def test_sample_is_uniform():
    space = Space("binary(unary(x),x)", operators=["add", "relu", "tanh"])
    counts = {name: 0 for name in map(str, space)}
    for seed in range(400):
        counts[str(space.sample(1, seed=seed)[0])] += 1
    assert min(counts.values()) > 140  # 200 expected each


def test_mixed_concrete_operators_and_nary_arity():
    assert Space("max(relu(x),unary(x))").count() == 27
    assert Space("n-ary(x,x)").count() == 4
    assert str(Space("n-ary(x,x)")[0]) == "sum_n(x,x)"


def test_lazy_iteration_of_the_big_union():
    first = list(itertools.islice(Space(*FOUR_NODE), 3))
    assert [str(e) for e in first] == [
        "add(zero(zero(x)),zero(x))",
        "add(zero(zero(x)),one(x))",
        "add(zero(zero(x)),identity(x))",
    ]


def test_errors():
    with pytest.raises(ActError, match="did you mean 'relu'"):
        Space("unary(x)", operators=["relux"])
    with pytest.raises(ActError, match="placeholder 'binary' has no operator"):
        Space("binary(x,x)", operators=["relu"])
    with pytest.raises(ActError, match="at least one schema"):
        Space()
    with pytest.raises(ActError, match="cannot sample 28"):
        Space("unary(x)").sample(28)
    with pytest.raises(ActError, match="not in the search space"):
        Space("unary(x)").index("add(x,x)")
    assert parse("add(x,x)") not in Space("unary(x)")


def test_vectorised_names_match_getitem():
    space = Space("binary(unary(x),unary(x))", "add(relu(x),unary(x))", "n-ary(x,unary(x))")
    positions = [*range(0, len(space), 97), len(space) - 1]
    assert space.names(positions) == [str(space[p]) for p in positions]
    with pytest.raises(IndexError):
        space.names([len(space)])
    with pytest.raises(ActError, match="indexed by position"):
        space["a"]
    assert space[np.int64(3)] == space[3]


def test_many_overlapping_schemas_match_brute_force():
    ops = ["add", "mul", "max", "relu", "tanh", "sigmoid", "abs", "exp"]
    unary = ["relu", "tanh", "sigmoid", "abs", "exp"]
    schemas = [f"binary({a}(x),unary(x))" for a in unary]
    schemas += [f"add(unary(x),{b}(x))" for b in unary]
    schemas += ["max(unary(x),unary(x))", "binary(unary(x),relu(x))", "mul(unary(x),tanh(x))"]
    schemas += ["binary(unary(x),unary(x))"] * 3
    space = Space(*schemas, operators=ops)
    brute = set()
    for schema in schemas:
        brute.update(str(e) for e in Space(schema, operators=ops))
    assert space.count() == len(brute) == 3 * 5 * 5
    assert sorted(map(str, space)) == sorted(brute)
