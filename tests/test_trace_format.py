"""The trace contract's text format: values that would break a naive parser survive the round trip."""

import pytest

from dataset_builder.trace import Step, encode_value, format_trace, parse_state, parse_trace

NASTY = ["'a, b=1'", "{'k': '}'}", "Point(x=1, y=2)", '"it\'s"', "[[...]]", "''", "'\\n'", "-0.0", "1e+100"]


@pytest.mark.parametrize("value", NASTY)
def test_values_that_are_already_safe_are_kept_as_they_are(value):
    assert encode_value(value, 200) == value
    assert parse_state(f"{{x={value}, y=2}}") == ((("x", value), ("y", "2")), True)


@pytest.mark.parametrize("raw", ["a, b=1", "(1", "1)", "}", "line\nbreak", "a]b["])
def test_values_that_would_not_scan_are_wrapped_and_round_trip(raw):
    encoded = encode_value(raw, 200)
    assert encoded.startswith("<repr ")
    steps = [Step(1, state=(("x", encoded), ("y", "2")))]
    assert parse_trace(format_trace(steps)).steps == steps


def test_addresses_and_main_prefix_are_removed():
    assert encode_value("<__main__.Foo object at 0x7f3a2b1c>", 200) == "<Foo object>"


def test_truncation_is_visible_and_balanced():
    encoded = encode_value("[" + ", ".join(["1"] * 100) + "]", 20)
    assert encoded.startswith("<truncated 300 chars: '[1, 1,")
    steps = [Step(3, state=(("big", encoded),))]
    assert parse_trace(format_trace(steps)).steps == steps


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "<execution_trace>",
        "Line x: State: {",
        "{" * 5000,
        "Line 1: State: {a=[}",
        "<execution_trace>\nOutput: 'x'\nReturn from at line : \n</execution_trace>",
    ],
)
def test_junk_never_raises(junk):
    parsed = parse_trace(junk)
    assert not parsed.valid


# --- text a program controls: anything at all must survive format -> parse -----------------------------------

_ALPHABET = [
    "a",
    "Z",
    "0",
    " ",
    ",",
    "=",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "'",
    '"',
    "\\",
    "\n",
    "\r",
    "\t",
    "<",
    ">",
    "/",
    ":",
    "\udcff",
    "\ud800",
    "é",
    "😀",
    "\x00",
    "Output: ",
    "Line 1: State: {",
    "<execution_trace>",
    "</execution_trace>",
    "</think>",
    " at 0x7f00ab",
    "<__main__.",
    "x=1, y=",
    "\\x3c",
]


def _random_text(rng) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 12)))


def test_any_value_output_or_message_round_trips_and_never_ends_the_block():
    """A property test over seeded random strings: values as the tracer encodes them, printed output as it is
    stored, exception messages as they are recorded. The text is always storable as UTF-8 and parses back to
    exactly the same steps, and the block's tags appear only where the format puts them."""
    import random

    from dataset_builder.trace import one_line_message, scrub_output

    rng = random.Random(0)
    for _ in range(3000):
        steps = [
            Step(
                1,
                state=(("v", encode_value(repr(_random_text(rng)), 40)), ("w", encode_value(_random_text(rng), 40))),
                output=scrub_output(_random_text(rng)),
            ),
            Step(2, "call", "f", 1, state=(("a", encode_value(_random_text(rng), 200)),)),
            Step(
                3, "return", "f", 1, value=encode_value(_random_text(rng), 200), output=scrub_output(_random_text(rng))
            ),
            Step(4, "exception", value=one_line_message(ValueError(_random_text(rng)))),
        ]
        text = format_trace(steps)
        text.encode("utf-8")  # no lone surrogate survives
        assert text.count("<execution_trace>") == 1 and text.count("</execution_trace>") == 1
        parsed = parse_trace(text)
        assert parsed.steps == steps, text
        assert parsed.valid
        compact = parse_trace(format_trace(steps, compact=True))  # the shorter notation reads back the same
        assert compact.steps == steps and compact.valid
