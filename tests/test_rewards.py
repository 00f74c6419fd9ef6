"""The reward: exact traces score 1, format alone scores about 0, partial credit is earned in order, junk never
raises. The format-gaming cases are those of docs/design.md §2 (what the original recipe paid for)."""

import pytest

from dataset_builder.trace import Step, format_trace
from trainer.rewards import ExecutionReward, completion_text, score_trace

SEED_EXAMPLE = """<execution_trace>
Line 1: State: {x=10}
Line 2: State: {x=10, y=20}
Line 3: State: {x=10, y=20, z=30}
</execution_trace>"""

# x = 10 / y = 20 / z = 30
SEED_STEPS = [
    Step(1, state=(("x", "10"),)),
    Step(2, state=(("x", "10"), ("y", "20"))),
    Step(3, state=(("x", "10"), ("y", "20"), ("z", "30"))),
]

# 1 items = [3, 1, 2]
# 2 items.sort()
# 3 d = {'a, b': items[0], 'k': 'x=1, y=2'}
# 4 def f(n):
# 5     return n * 2
# 6 r = f(d['a, b'])
# 7 print(r)
LIST_STEPS = [
    Step(1, state=(("items", "[3, 1, 2]"),)),
    Step(2, state=(("items", "[1, 2, 3]"),)),
    Step(3, state=(("items", "[1, 2, 3]"), ("d", "{'a, b': 1, 'k': 'x=1, y=2'}"))),
    Step(4, state=(("items", "[1, 2, 3]"), ("d", "{'a, b': 1, 'k': 'x=1, y=2'}"))),
    Step(4, "call", "f", 1, (("n", "1"),)),
    Step(5, "line", "f", 1, (("n", "1"),)),
    Step(5, "return", "f", 1, value="2"),
    Step(6, state=(("items", "[1, 2, 3]"), ("d", "{'a, b': 1, 'k': 'x=1, y=2'}"), ("r", "2"))),
    Step(7, state=(("items", "[1, 2, 3]"), ("d", "{'a, b': 1, 'k': 'x=1, y=2'}"), ("r", "2")), output="2\n"),
]


def replace_value(steps, name, new):
    return [
        Step(
            s.line,
            s.event,
            s.function,
            s.depth,
            tuple((n, new if n == name else v) for n, v in s.state),
            s.value,
            s.output,
        )
        for s in steps
    ]


@pytest.fixture(params=["seed", "list"])
def steps(request):
    return SEED_STEPS if request.param == "seed" else LIST_STEPS


# --- exact and near-exact -----------------------------------------------------------------------------------


def test_exact_trace_scores_one(steps):
    reference = format_trace(steps)
    assert score_trace(reference, reference) == 1.0


def test_seed_example_scores_one_against_our_trace():
    assert score_trace(SEED_EXAMPLE, format_trace(SEED_STEPS)) == 1.0


def test_seed_example_scores_one_against_the_real_tracer():
    tracer = pytest.importorskip("dataset_builder.tracer")
    if not hasattr(tracer, "trace_program"):
        pytest.skip("the builder's tracer has not landed yet")
    result = tracer.trace_program("x = 10\ny = 20\nz = 30\n")
    steps = getattr(result, "steps", None)
    if steps is None and isinstance(result, dict):
        steps = result["steps"]
    steps = [s if isinstance(s, Step) else Step.from_row(s) for s in steps]
    assert score_trace(SEED_EXAMPLE, format_trace(steps)) == 1.0


def test_whitespace_inside_and_around_values_is_tolerated():
    reference = format_trace(LIST_STEPS)
    squeezed = (
        reference.replace("[1, 2, 3]", "[1,2,3]")
        .replace("[3, 1, 2]", "[ 3,1 , 2 ]")
        .replace(", d=", ",d=")
        .replace("{items=", "{ items = ")
        .replace("'a, b': 1", "'a, b' :1")
    )
    assert squeezed != reference
    assert score_trace(squeezed, reference) == 1.0
    assert score_trace("\n\n  " + reference + "\n\nThat is the trace.", reference) == 1.0


def test_whitespace_inside_strings_is_a_value():
    reference = format_trace(LIST_STEPS)
    wrong = reference.replace("'x=1, y=2'", "'x=1,y=2'")
    assert score_trace(wrong, reference) < 1.0


def test_variable_order_within_a_state_does_not_matter():
    reference = format_trace(SEED_STEPS)
    reordered = reference.replace("{x=10, y=20, z=30}", "{z=30, x=10, y=20}")
    assert score_trace(reordered, reference) == 1.0


# --- the answer after </think> -------------------------------------------------------------------------------


def test_answer_is_read_after_the_last_think_close():
    reference = format_trace(SEED_STEPS)
    wrong = format_trace(replace_value(SEED_STEPS, "x", "11"))
    assert score_trace(f"<think>let me see\n{wrong}\nno wait</think>\n\n{reference}", reference) == 1.0
    assert score_trace(f"<think>{reference}</think>\n\n{wrong}", reference) < 0.5
    assert score_trace(f"<think>{reference}</think>draft</think>\n{reference}", reference) == 1.0


def test_unfinished_thinking_scores_zero():
    reference = format_trace(SEED_STEPS)
    assert score_trace(f"<think>\nThe trace is {reference}", reference) == 0.0


def test_trl_wrapper_with_a_thinking_template_treats_the_completion_as_inside_think():
    reference = format_trace(SEED_STEPS)
    reward = ExecutionReward(thinking=True)
    completions = [
        [{"role": "assistant", "content": f"reasoning...</think>\n\n{reference}"}],
        [{"role": "assistant", "content": f"reasoning, then cut off: {reference}"}],  # never closed its thinking
        [{"role": "assistant", "content": "</think>\n\nno trace"}],
    ]
    scores = reward(
        prompts=[[]] * 3,
        completions=completions,
        completion_ids=[[]] * 3,
        expected_trace=[reference] * 3,
        code=["x"] * 3,
    )
    assert scores == [1.0, 0.0, 0.0]


def test_trl_wrapper_without_thinking_and_with_plain_strings():
    reference = format_trace(SEED_STEPS)
    reward = ExecutionReward()
    assert reward.__name__ == "execution_reward"
    assert reward(prompts=["p", "p"], completions=[reference, "junk"], expected_trace=[reference] * 2) == [1.0, 0.0]
    with pytest.raises(KeyError, match="expected_trace"):
        reward(prompts=["p"], completions=[reference])


def test_completion_text_accepts_what_trl_passes():
    assert completion_text("abc") == "abc"
    assert completion_text([{"role": "assistant", "content": "abc"}]) == "abc"
    assert completion_text([{"role": "assistant", "content": None}]) == ""
    assert completion_text(None) == ""


# --- format gaming (docs/design.md §2) ------------------------------------------------------------------------------


def test_right_format_with_every_value_wrong_scores_about_zero(steps):
    reference = format_trace(steps)
    wrong = steps
    for name in {n for s in steps for n, _ in s.state}:
        wrong = replace_value(wrong, name, "999")
    wrong = [Step(s.line, s.event, s.function, s.depth, s.state, "999" if s.value else "", s.output) for s in wrong]
    score = score_trace(format_trace(wrong), reference)
    assert score <= 0.1 + 1e-9  # at most the credit for right line numbers


def test_six_empty_states_score_about_zero(steps):
    reference = format_trace(steps)
    gamed = "<execution_trace>\n" + "Line 1: State: {}\n" * 6 + "</execution_trace>"
    assert score_trace(gamed, reference) < 0.05


def test_empty_block_and_bare_tags_score_zero(steps):
    reference = format_trace(steps)
    assert score_trace("<execution_trace>\n</execution_trace>", reference) == 0.0
    assert score_trace("<execution_trace></execution_trace>", reference) == 0.0


def test_wrong_list_tail_is_not_right():
    reference = format_trace(LIST_STEPS)
    wrong = reference.replace("[1, 2, 3]", "[1, 2, 4]")
    assert 0.0 < score_trace(wrong, reference) < 0.8


def test_wrong_dict_value_is_not_right():
    reference = format_trace(LIST_STEPS)
    wrong = reference.replace("'k': 'x=1, y=2'", "'k': 'x=1, y=3'")
    assert score_trace(wrong, reference) < 0.8


def test_commas_inside_strings_are_not_separators():
    # `s='a, b=2'` is one value: a prediction that splits it into two variables is wrong, not half right.
    reference = format_trace([Step(1, state=(("s", "'a, b=2'"),))])
    assert score_trace(reference, reference) == 1.0
    split = "<execution_trace>\nLine 1: State: {s='a, b=2}\n</execution_trace>"
    assert score_trace(split, reference) < 0.2


def test_wrong_line_numbers_cost():
    reference = format_trace(SEED_STEPS)
    shifted = format_trace([Step(s.line + 10, state=s.state) for s in SEED_STEPS])
    # right values at the wrong lines are half right: the line is the control flow
    assert abs(score_trace(shifted, reference) - 0.45) < 1e-9


def test_order_is_scored(steps):
    reference = format_trace(steps)
    reversed_trace = format_trace(list(reversed(steps)))
    assert score_trace(reversed_trace, reference) < 0.5


def test_missing_steps_cost_in_proportion():
    reference = format_trace(LIST_STEPS)
    half = format_trace(LIST_STEPS[:4])
    score = score_trace(half, reference)
    assert score == pytest.approx(4 / len(LIST_STEPS))


def test_extra_steps_cost():
    reference = format_trace(SEED_STEPS)
    padded = format_trace(SEED_STEPS + [Step(4, state=SEED_STEPS[-1].state)] * 3)
    assert score_trace(padded, reference) == pytest.approx(0.5)
    doubled = format_trace(SEED_STEPS + SEED_STEPS)
    assert score_trace(doubled, reference) == pytest.approx(0.5)


def test_repeating_the_final_state_everywhere_earns_only_partial_credit():
    reference = format_trace(SEED_STEPS)
    final = SEED_STEPS[-1].state
    gamed = format_trace([Step(s.line, state=final) for s in SEED_STEPS])
    assert 0.3 < score_trace(gamed, reference) < 0.7


def test_more_right_values_score_more():
    reference = format_trace(LIST_STEPS)
    one_wrong = format_trace(replace_value(LIST_STEPS, "r", "3"))
    two_wrong = format_trace(replace_value(replace_value(LIST_STEPS, "r", "3"), "items", "[]"))
    assert 1.0 > score_trace(one_wrong, reference) > score_trace(two_wrong, reference) > 0.1


def test_only_the_first_block_counts():
    reference = format_trace(SEED_STEPS)
    wrong = format_trace(replace_value(SEED_STEPS, "x", "0"))
    assert score_trace(wrong + "\n" + reference, reference) < 1.0


def test_text_without_a_block_scores_zero_even_if_it_has_trace_lines():
    reference = format_trace(SEED_STEPS)
    body = reference.replace("<execution_trace>", "").replace("</execution_trace>", "")
    assert score_trace(body, reference) == 0.0


def test_unclosed_block_gets_partial_credit_but_not_one():
    reference = format_trace(SEED_STEPS)
    cut = reference.replace("</execution_trace>", "")
    assert 0.5 < score_trace(cut, reference) < 1.0


def test_the_reference_in_a_code_fence_still_counts():
    reference = format_trace(SEED_STEPS)
    assert score_trace(f"Here it is:\n```\n{reference}\n```", reference) == 1.0


# --- junk never raises ---------------------------------------------------------------------------------------

JUNK = [
    "",
    " ",
    "\x00\xff\ud800",
    "<execution_trace>",
    "</execution_trace>",
    "<execution_trace>\nLine : State: {\n</execution_trace>",
    "<execution_trace>\nLine 1: State: {x=[[[[[[\n</execution_trace>",
    "<execution_trace>\nLine 1: State: {x='unterminated}\n</execution_trace>",
    "<execution_trace>\nLine 99999999999999999999999: State: {x=1}\n</execution_trace>",
    "<execution_trace>\nOutput: '\\x'\nLine 1: State: {=}\n</execution_trace>",
    "<execution_trace>\n" + "Line 1: State: {x=1}\n" * 5000 + "</execution_trace>",
    "<execution_trace>\n" + "[" * 20000 + "\n</execution_trace>",
    "Line 1: State: {x=10}" * 1000,
    "</think>" * 50,
    "<think><think></think>",
]


@pytest.mark.parametrize("junk", JUNK, ids=range(len(JUNK)))
def test_junk_never_raises_and_scores_about_zero(junk):
    reference = format_trace(LIST_STEPS)
    score = score_trace(junk, reference)
    assert 0.0 <= score <= 0.05


def test_non_strings_never_raise():
    assert score_trace(None, format_trace(SEED_STEPS)) == 0.0
    assert score_trace(b"bytes", format_trace(SEED_STEPS)) == 0.0
    assert 0.0 <= score_trace(format_trace(SEED_STEPS), "") <= 1.0


def test_scores_stay_in_range_on_random_mutations():
    import random

    rng = random.Random(0)
    reference = format_trace(LIST_STEPS)
    for _ in range(300):
        text = list(reference)
        for _ in range(rng.randint(1, 20)):
            i = rng.randrange(len(text))
            text[i] = rng.choice("{}[]()',=: \n0123456789xabc")
        score = score_trace("".join(text), reference)
        assert 0.0 <= score <= 1.0
