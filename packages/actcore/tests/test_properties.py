"""Property-based guards: whatever text a user types, the parser and the space
constructor answer with a result or an ActError, never anything else."""

from hypothesis import given, settings
from hypothesis import strategies as st

from actcore import ActError, Space, parse
from actcore.operators import builtin_operators

OPERATORS = [op for op in builtin_operators() if not op.extended]
# texts near the grammar: names, placeholders, parentheses, commas, junk
TOKENS = st.sampled_from(
    [op.name for op in OPERATORS]
    + ["unary", "binary", "n-ary", "x", "(", ")", ",", " ", "", "((", "))", "-", "1", "é"]
)
NEAR_GRAMMAR = st.lists(TOKENS, max_size=12).map("".join)
ANY_TEXT = st.text(max_size=40)


@st.composite
def expressions(draw, depth=3):
    """A valid expression over the core operators, as text."""
    if depth == 0 or draw(st.booleans()):
        return "x"
    op = draw(st.sampled_from(OPERATORS))
    arity = op.arity if op.arity > 0 else draw(st.integers(1, 3))
    args = [draw(expressions(depth=depth - 1)) for _ in range(arity)]
    return f"{op.name}({','.join(args)})"


@settings(max_examples=300, deadline=None)
@given(st.one_of(ANY_TEXT, NEAR_GRAMMAR))
def test_parser_answers_every_text_with_an_expression_or_an_act_error(text):
    try:
        expr = parse(text)
    except ActError:
        return
    assert parse(str(expr)) == expr


@settings(max_examples=200, deadline=None)
@given(expressions())
def test_valid_expressions_round_trip(text):
    assert str(parse(text)) == text
    assert parse(str(parse(text))) == parse(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(ANY_TEXT, NEAR_GRAMMAR), min_size=1, max_size=3),
       st.one_of(st.none(), st.lists(st.sampled_from(["relu", "tanh", "add", "sum_n", "rleu",
                                                      "unary", ""]), max_size=4)))
def test_space_constructor_answers_with_a_space_or_an_act_error(schemas, operators):
    try:
        space = Space(*schemas, operators=operators)
    except ActError:
        return
    count = space.count()
    assert count >= 0
    if count > 0:
        first = space[0]
        assert first in space and space.index(first) == 0
