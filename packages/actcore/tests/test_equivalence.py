import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import actcore.equivalence
import actcore.space_outputs
from actcore import ActError, Space, equivalence_classes, evaluate, parse, sample_points

# The classes of the binary space and of the four-node union, as found on any machine
# (they do not depend on float32 kernels: see test_same_classes_under_other_kernels).
BINARY_CLASSES = 2791
BINARY_DIGEST = "aaa10863caaed548"

# Mathematically identical functions, each pair one class (float32 kernels kept them
# apart, and so do the published counts).
IDENTITIES = [
    ("sub(exp(x),expm1(x))", "one(x)"),
    ("mul(tanh(x),cosh(x))", "sinh(x)"),
    ("min(elu(x),expm1(x))", "elu(x)"),
    ("mul(identity(x),sigmoid(x))", "swish(x)"),
    ("div(one(x),identity(x))", "reciprocal(x)"),
    ("add(softplus(x),log_sigmoid(x))", "identity(x)"),
    ("add(erf(x),erfc(x))", "one(x)"),
    ("div(abs(x),abs(x))", "one(x)"),
    ("sub(exp(x),cosh(x))", "sinh(x)"),
    ("add(cosh(x),sinh(x))", "exp(x)"),
    ("sub(cosh(x),sinh(x))", "div(one(x),exp(x))"),
    ("div(sinh(x),cosh(x))", "tanh(x)"),
    ("div(expm1(x),sinh(x))", "add(sigmoid(x),sigmoid(x))"),
    ("mul(exp(x),sigmoid(x))", "sub(exp(x),sigmoid(x))"),
    ("div(sigmoid(x),exp(x))", "sub(one(x),sigmoid(x))"),
    ("mul(abs(x),softsign(x))", "sub(identity(x),softsign(x))"),
    ("div(swish(x),sigmoid(x))", "identity(x)"),
    ("div(square(x),identity(x))", "identity(x)"),
    ("sub(identity(x),softplus(x))", "log_sigmoid(x)"),
    ("add(one(x),identity(x))", "add(one(abs(x)),identity(x))"),  # 1 + x: exact ties
]

# Functions close to each other somewhere but not everywhere: they stay apart.
NEAR_MISSES = [
    ("softplus(x)", "relu(x)"),
    ("elu(x)", "selu(x)"),
    ("swish(x)", "relu(x)"),
    ("tanh(x)", "arctan(x)"),
    ("erf(x)", "tanh(x)"),
    ("sigmoid(x)", "hard_sigmoid(x)"),
    ("exp(x)", "add(one(x),identity(x))"),
    ("gelu(x)", "swish(x)"),
    ("leakyrelu(x)", "relu(x)"),
    ("softsign(x)", "tanh(x)"),
]


@pytest.mark.parametrize(("a", "b"), IDENTITIES)
def test_identities_are_one_class(a, b):
    classes = equivalence_classes([a, b])
    assert len(classes) == 1, f"{a} and {b} are the same function"


@pytest.mark.parametrize(("a", "b"), NEAR_MISSES)
def test_different_functions_stay_apart(a, b):
    assert len(equivalence_classes([a, b])) == 2


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("zero(x)", "pow(zero(x),hard_sigmoid(x))"),  # 0**0 = 1 where x <= -2.5
        ("selu(x)", "min(selu(x),softplus(x))"),  # softplus < selu for large x only
    ],
)
def test_functions_that_differ_on_a_few_points_stay_apart(a, b):
    rows = _round_like_ties(evaluate([a, b], sample_points().double()))
    assert 0 < int((rows[0] != rows[1]).sum()) <= 12
    assert len(equivalence_classes([a, b])) == 2


def test_flags_say_what_a_float32_network_meets():
    """A function is flagged when a sub-expression leaves float32; a class when all its
    members are, and its representative is then an unflagged member when there is one."""
    overflows = "mul(zero(x),exp(square(square(x))))"  # e**231 at x = -3.9: not float32
    names = [overflows, "zero(zero(zero(zero(zero(zero(x))))))", "reciprocal(zero(x))"]
    classes = equivalence_classes(names)
    assert len(classes) == 2
    assert classes.nonfinite(overflows)
    assert not classes.nonfinite("zero(zero(zero(zero(zero(zero(x))))))")
    # the shorter name is flagged, so the longer one represents (and gets trained)
    assert classes.representative(overflows) == "zero(zero(zero(zero(zero(zero(x))))))"
    assert classes.nonfinite_flags().tolist() == [False, True]
    # in a space the same rule holds (flags travel through the inner tables)
    ops = ["mul", "zero", "exp", "square"]
    space = Space("binary(unary(x),unary(unary(unary(x))))", operators=ops)
    in_space = equivalence_classes(space)
    assert in_space.nonfinite(overflows)
    assert not in_space.nonfinite("mul(zero(x),exp(square(zero(x))))")
    assert in_space.representative(overflows) == "mul(exp(x),zero(exp(exp(x))))"
    assert not in_space.nonfinite_flags()[in_space.class_index(overflows)]


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


def _round_like_ties(values: torch.Tensor) -> torch.Tensor:
    """Independent float32 rounding with near-ties as ties: find the nearest halfway
    point with nextafter and snap values within 2**-13 of a float32 ulp of it."""
    r = values.float()
    up = torch.nextafter(r, torch.tensor(float("inf"))).double()
    down = torch.nextafter(r, torch.tensor(float("-inf"))).double()
    r64 = r.double()
    half = torch.where(values >= r64, (r64 + up) / 2, (r64 + down) / 2)
    ulp = (up - r64).abs()
    near = ((values - half).abs() <= ulp * 2.0**-13) & torch.isfinite(half)
    return torch.where(near, half, values).float()


def _brute_force_partition(names):
    """Independent grouping: every name evaluated alone-ish in float64 through the DAG
    evaluator, rounded by :func:`_round_like_ties`, rows compared as numpy bytes."""
    rows = _round_like_ties(evaluate(names, sample_points().double())).numpy() + np.float32(0)
    rows[np.isnan(rows)] = np.nan
    seen: dict[bytes, int] = {}
    return np.array([seen.setdefault(row.tobytes(), len(seen)) for row in rows])


def _brute_force_flags(names):
    """Per name: does any sub-expression, evaluated in float64 and rounded, leave float32?"""
    subs: dict[str, None] = {}
    for name in names:
        stack = [parse(name)]
        while stack:
            node = stack.pop()
            subs[str(node)] = None
            stack.extend(node.args)
    order = list(subs)
    values = evaluate(order, sample_points().double()).float()
    bad = dict(zip(order, (~torch.isfinite(values).all(dim=1)).tolist()))

    def flagged(node):
        return bad[str(node)] or any(flagged(a) for a in node.args)

    return np.array([flagged(parse(n)) for n in names])


def _same_partition(a, b):
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_space_classes_match_brute_force_on_the_binary_space():
    space = Space("binary(unary(x),unary(x))")
    names = [str(e) for e in space]
    classes = equivalence_classes(space)
    assert len(classes) == BINARY_CLASSES  # cross-checked below by an independent computation
    assert _same_partition(classes.class_of, _brute_force_partition(names))
    from_list = equivalence_classes(names)
    assert np.array_equal(from_list.class_of, classes.class_of)
    assert from_list.representatives == classes.representatives
    flags = _brute_force_flags(names)
    assert flags.sum() == 493 and classes.nonfinite_flags().sum() == 382
    assert np.array_equal(flags, [classes.nonfinite(n) for n in names])
    assert np.array_equal(from_list.nonfinite_flags(), classes.nonfinite_flags())
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


def test_progress_of_a_space_knows_its_total(monkeypatch):
    """The bar over a space has a total (so an ETA) before the long part starts, and
    ends exactly there: every root combination is counted once."""
    bars = []

    class Recorded(actcore.equivalence.Progress):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append(self)

        def update(self, n=1):
            assert self.total, "counting before the total is known"
            return super().update(n)

    monkeypatch.setattr(actcore.equivalence, "Progress", Recorded)
    space = Space("x", "unary(unary(x))", "binary(unary(x),x)")
    equivalence_classes(space, progress=True)
    bar, = bars
    assert bar.total == bar.n > 0


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
    flags = _brute_force_flags(names)
    assert np.array_equal(flags, [classes.nonfinite(n) for n in names])
    # a flagged class has no unflagged member; an unflagged one is represented by one
    for c, rep in enumerate(classes.representatives):
        assert classes.nonfinite_flags()[c] == classes.nonfinite(rep)
    some = [n for n, f in zip(names, flags) if f][::50]
    for name in some:
        cls = classes.class_index(name)
        members = classes.members(name)
        assert classes.nonfinite_flags()[cls] == all(classes.nonfinite(m) for m in members)


def test_input_schema_and_learnable_operators(learnable_operator):
    classes = equivalence_classes(Space("x", "unary(x)"))
    assert len(classes) == 27 and classes.members("identity(x)") == ["x", "identity(x)"]

    with pytest.raises(ActError, match="search spaces range over fixed operators"):
        Space("unary(x)", operators=["scaled"])
    assert Space("scaled(unary(x))").count() == 27
    with pytest.raises(ActError, match="'scaled' is learnable"):
        equivalence_classes(Space("scaled(unary(x))"))


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


def test_chunk_size_does_not_change_the_classes(monkeypatch):
    space = Space("binary(unary(x),unary(unary(x)))", operators=OPS_FOR_DEPTH)
    names = [str(e) for e in space.sample(2000, seed=3)]
    digests = set()
    for chunk in (7, 512, 100_000):
        monkeypatch.setattr(actcore.space_outputs, "CHUNK_ROWS", chunk)
        digests.add((equivalence_classes(space).digest(), equivalence_classes(names).digest()))
    assert len(digests) == 1


OPS_FOR_DEPTH = ["one", "identity", "exp", "expm1", "sinh", "cosh", "tanh", "sigmoid",
                 "softplus", "log_sigmoid", "erf", "add", "sub", "mul", "div", "sum_n"]

_DIGESTS = """
import sys, torch
torch.set_num_threads(int(sys.argv[1]))
from actcore import Space, equivalence_classes
ops = sys.argv[2].split(",")
print(equivalence_classes(Space("binary(unary(x),unary(x))")).digest())
print(equivalence_classes(Space("binary(unary(unary(x)),unary(x))", operators=ops)).digest())
names = [str(e) for e in Space("unary(binary(unary(x),unary(x)))").sample(3000, seed=5)]
print(equivalence_classes(names).digest())
"""


def _digests(threads: int, **env: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _DIGESTS, str(threads), ",".join(OPS_FOR_DEPTH)],
        env={**os.environ, **env}, capture_output=True, text=True, check=True,
    )
    return out.stdout.split()


def test_same_classes_under_other_kernels():
    """torch's generic (scalar) kernels stand in for another CPU: the float32 kernels
    give other outputs there, the classes must not change. Threads do not matter either."""
    best = _digests(2)
    assert best[0] == BINARY_DIGEST
    assert _digests(1, ATEN_CPU_CAPABILITY="default") == best
    assert _digests(2, ATEN_CPU_CAPABILITY="default", OMP_NUM_THREADS="1") == best


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_exact_outputs_on_cuda_match_the_cpu():
    from actcore.evaluate import exact_outputs

    names = [str(e) for e in Space("binary(unary(x),unary(x))")]
    cpu, cpu_flags = exact_outputs(names)
    gpu, gpu_flags = exact_outputs(names, sample_points(device="cuda"))
    assert torch.equal(cpu.nan_to_num(7.0), gpu.cpu().nan_to_num(7.0))
    assert np.array_equal(cpu_flags, gpu_flags)
