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
