import pytest

import actcore
from actcore import ParseError, parse

NAMES = [
    "relu(x)",
    "x",
    "max(relu(x),cosh(elu(x)))",
    "sum_n(abs(x),swish(x),sigmoid(x))",
    "pow(x,one(x))",
    "prod_n(x)",
]


@pytest.mark.parametrize("text", NAMES)
def test_round_trip(text):
    assert str(parse(text)) == text


@pytest.mark.parametrize(
    ("text", "reason", "position"),
    [
        ("", "empty expression", 0),
        ("relu(x", "never closed", 0),
        ("relu(x))", "unexpected ')'", 7),
        ("rleu(x)", "did you mean 'relu'", 0),
        ("add(x)", "wrong arity", 0),
        ("relu(x)abc", "trailing characters", 7),
        ("relu(x,)", "expected an operator name", 7),
        ("relu(x) ", "trailing characters", 7),
    ],
)
def test_errors_point_at_position(text, reason, position):
    with pytest.raises(ParseError) as info:
        parse(text)
    assert reason in str(info.value)
    assert info.value.position == position
    assert isinstance(info.value, actcore.ActError)


def test_absurd_nesting_is_rejected():
    text = "relu(" * 1000 + "x" + ")" * 1000
    with pytest.raises(ParseError, match="nested deeper"):
        parse(text)


def test_sum_n_without_arguments_reports_arity():
    with pytest.raises(ParseError, match="'sum_n' takes at least 1 argument") as info:
        parse("sum_n()")
    assert info.value.position == 0


def test_round_trip_every_member_of_the_binary_space():
    from actcore import Space

    names = [str(e) for e in Space("binary(unary(x),unary(x))")]
    assert len(names) == 5103
    assert all(str(parse(name)) == name for name in names)


@pytest.mark.parametrize(
    "schema",
    [
        "binary(unary(unary(x)),unary(x))",
        "binary(unary(x),unary(unary(x)))",
        "n-ary(unary(x),unary(x),unary(x))",
        "unary(binary(unary(x),unary(x)))",
        "unary(unary(unary(unary(x))))",
    ],
)
def test_round_trip_sample_of_four_node_schemas(schema):
    from actcore import Space

    for expr in Space(schema).sample(300, seed=3):
        assert parse(str(expr)) == expr


def test_unknown_operator_lists_close_names():
    with pytest.raises(ParseError, match="did you mean 'tanh'") as info:
        parse("add(x,tanhh(x))")
    assert info.value.position == 6


def test_expressions_pickle_across_processes_as_dict_keys(tmp_path):
    import pickle
    import subprocess
    import sys

    path = tmp_path / "keys.pkl"
    path.write_bytes(pickle.dumps({parse("add(relu(x),tanh(x))"): 1}))
    code = (
        "import pickle, sys; from actcore import parse; "
        f"d = pickle.loads(open({str(path)!r}, 'rb').read()); "
        "sys.exit(0 if d.get(parse('add(relu(x),tanh(x))')) == 1 else 1)"
    )
    env = {"PYTHONHASHSEED": "12345", "PATH": ""}
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=120).returncode == 0


def test_bare_names_and_pytorch_aliases_parse_to_the_canonical_expression():
    assert str(parse("relu")) == "relu(x)"
    assert str(parse("silu")) == str(parse("silu(x)")) == "swish(x)"
    assert str(parse("add(leaky_relu(x),hardsigmoid(x))")) == "add(leakyrelu(x),hard_sigmoid(x))"
    assert str(actcore.to_module("silu")) == "swish(x)"
    with pytest.raises(ParseError, match="wrong arity: 'add' takes 2"):
        parse("add")
    with pytest.raises(ParseError, match="needs its arguments in parentheses"):
        parse("add(relu,x)")  # a bare name stands for name(x) only as the whole expression
