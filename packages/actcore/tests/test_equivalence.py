import numpy as np
import pytest

from actcore import ActError, Space, equivalence_classes, evaluate, sample_points


def test_hand_made_classes():
    classes = equivalence_classes(
        [
            "add(relu(x),tanh(x))",
            "add(tanh(x),relu(x))",
            "mul(x,one(x))",
            "identity(x)",
            "x",
            "relu(x)",
            "max(x,zero(x))",
            "tanh(x)",
        ]
    )
    assert classes.members("add(tanh(x),relu(x))") == [
        "add(relu(x),tanh(x))",
        "add(tanh(x),relu(x))",
    ]
    assert classes.representative("mul(x,one(x))") == "x"
    assert classes.representative("identity(x)") == "x"
    assert classes.representative("max(x,zero(x))") == "relu(x)"
    assert classes.representatives == ["add(relu(x),tanh(x))", "x", "relu(x)", "tanh(x)"]
    assert len(classes) == 4
    assert classes.class_index("relu(x)") == 2
    assert not classes.nonfinite("x")


def test_nan_equals_nan_and_signed_zeros_are_equal():
    classes = equivalence_classes(
        [
            "zero(x)",
            "negative(zero(x))",  # -0.0 everywhere, equal to 0.0 as a number
            "reciprocal(zero(x))",  # +inf
            "reciprocal(negative(zero(x)))",  # -inf: different from +inf
            "sub(reciprocal(zero(x)),reciprocal(zero(x)))",  # inf - inf = NaN
            "mul(zero(x),reciprocal(zero(x)))",  # 0 * inf = NaN
            "negative(sub(reciprocal(zero(x)),reciprocal(zero(x))))",  # NaN, other sign bit
        ]
    )
    assert classes.members("zero(x)") == ["zero(x)", "negative(zero(x))"]
    assert classes.members("reciprocal(zero(x))") == ["reciprocal(zero(x))"]
    assert classes.members("mul(zero(x),reciprocal(zero(x)))") == [
        "sub(reciprocal(zero(x)),reciprocal(zero(x)))",
        "mul(zero(x),reciprocal(zero(x)))",
        "negative(sub(reciprocal(zero(x)),reciprocal(zero(x))))",
    ]
    assert classes.nonfinite("reciprocal(zero(x))") and classes.nonfinite(
        "sub(reciprocal(zero(x)),reciprocal(zero(x)))"
    )
    assert not classes.nonfinite("negative(zero(x))")


def test_signed_zero_inside_a_space_is_told_apart_by_reciprocal():
    """Inner results are compared bit for bit: -0.0 and 0.0 differ under reciprocal."""
    space = Space("unary(unary(x))", operators=["zero", "negative", "reciprocal"])
    classes = equivalence_classes(space)
    assert classes.representative("negative(zero(x))") == "zero(zero(x))"
    space3 = Space("unary(unary(unary(x)))", operators=["zero", "negative", "reciprocal"])
    classes3 = equivalence_classes(space3)
    assert classes3.representative("reciprocal(negative(zero(x)))") != classes3.representative(
        "reciprocal(zero(zero(x)))"
    )
    assert classes3.nonfinite("reciprocal(zero(zero(x)))")


def _brute_force_partition(names):
    """Independent grouping: exact comparison of canonicalised rows with numpy."""
    rows = evaluate(names, sample_points()).numpy() + np.float32(0.0)
    rows[np.isnan(rows)] = np.nan
    seen: dict[bytes, int] = {}
    return np.array([seen.setdefault(row.tobytes(), len(seen)) for row in rows])


def _same_partition(a, b):
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_space_classes_match_brute_force_on_the_binary_space():
    space = Space("binary(unary(x),unary(x))")
    names = [str(e) for e in space]
    classes = equivalence_classes(space)
    assert len(classes) == 2909  # cross-checked below by an independent computation
    assert _same_partition(classes.class_of, _brute_force_partition(names))
    from_list = equivalence_classes(names)
    assert np.array_equal(from_list.class_of, classes.class_of)
    assert from_list.representatives == classes.representatives
    finite = np.isfinite(evaluate(names).numpy()).all(axis=1)
    assert np.array_equal(~finite, classes.nonfinite_flags()[classes.class_of])
    assert sum(classes.sizes()) == 5103


def test_union_classes_across_schemas_match_brute_force():
    schemas = [
        "unary(unary(x))",
        "binary(unary(x),x)",
        "add(relu(x),unary(x))",
        "binary(unary(x),relu(x))",  # shares add(relu(x),relu(x)) with the one before
    ]
    space = Space(*schemas)
    assert space.overlapping
    names = [str(e) for e in space]
    classes = equivalence_classes(space)
    assert _same_partition(classes.class_of, _brute_force_partition(names))
    for name in ["add(relu(x),zero(x))", "identity(relu(x))", "max(relu(x),x)"]:
        assert classes.representative(name) == "abs(relu(x))"  # shortest, then a < r
    assert "relu(relu(x))" in classes.members("add(relu(x),zero(x))")


def test_representative_is_shortest_then_lexicographic():
    space = Space(
        "binary(unary(x),unary(x))", operators=["add", "mul", "relu", "abs", "one", "identity"]
    )
    classes = equivalence_classes(space)
    for rep in classes.representatives:
        members = classes.members(rep)
        assert rep == min(members, key=lambda n: (len(n), n))


def test_unknown_member_and_empty_input():
    classes = equivalence_classes(["relu(x)"])
    with pytest.raises(ActError, match="not one of the functions"):
        classes.members("tanh(x)")
    with pytest.raises(ActError, match="no functions"):
        equivalence_classes([])


def test_progress_bar_does_not_change_results():
    a = equivalence_classes(Space("unary(unary(x))"), progress=True)
    b = equivalence_classes(Space("unary(unary(x))"))
    assert np.array_equal(a.class_of, b.class_of)


def test_deep_schemas_match_brute_force():
    """Tables of distinct inner rows must not lose information four levels deep."""
    ops = ["zero", "one", "negative", "abs", "reciprocal", "exp", "log_sigmoid", "relu"]
    ops += ["tanh", "square", "add", "pow", "max", "sum_n"]
    space = Space(
        "unary(unary(unary(unary(x))))",
        "unary(binary(unary(x),unary(x)))",
        "n-ary(unary(x),unary(x),unary(x))",
        operators=ops,
    )
    names = [str(e) for e in space]
    classes = equivalence_classes(space)
    assert len(names) == 10**4 + 10 * 3 * 100 + 1000
    assert _same_partition(classes.class_of, _brute_force_partition(names))
    finite = np.isfinite(evaluate(names).numpy()).all(axis=1)
    assert np.array_equal(~finite, classes.nonfinite_flags()[classes.class_of])


def test_input_schema_and_learnable_operators():
    classes = equivalence_classes(Space("x", "unary(x)"))
    assert len(classes) == 27 and classes.members("identity(x)") == ["x", "identity(x)"]

    from torch import nn

    from actcore import Operator, hookimpl, plugins

    class Learnable:
        @hookimpl
        def act_operators(self):
            return [Operator("scaled", 1, module=lambda args: nn.Sequential(*args))]

    plugins.register(Learnable(), name="learnable-test")
    try:
        with pytest.raises(ActError, match="search spaces range over fixed operators"):
            Space("unary(x)", operators=["scaled"])
        assert Space("scaled(unary(x))").count() == 27
        with pytest.raises(ActError, match="'scaled' is learnable"):
            equivalence_classes(Space("scaled(unary(x))"))
    finally:
        plugins.unregister("learnable-test")


def test_plugin_operator_that_ignores_an_argument():
    from actcore import Operator, hookimpl, plugins

    class Right:
        @hookimpl
        def act_operators(self):
            return [Operator("right", 2, _right)]

    plugins.register(Right(), name="right-test")
    try:
        space = Space("right(unary(x),unary(x))", "unary(x)")
        classes = equivalence_classes(space)
        assert len(classes) == 27
        assert classes.representative("right(tanh(x),relu(x))") == "relu(x)"
        names = [str(e) for e in space]
        assert _same_partition(classes.class_of, _brute_force_partition(names))
    finally:
        plugins.unregister("right-test")


def _right(a, b):
    return b


def test_absurd_space_is_refused_up_front():
    with pytest.raises(ActError, match="not supported"):
        equivalence_classes(Space("binary(binary(unary(x),unary(x)),binary(unary(x),unary(x)))"))
