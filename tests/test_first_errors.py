"""scripts/first_errors.py: the first wrong step of a predicted trace, and the line that caused it."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from first_errors import analyse, first_error  # noqa: E402

CODE = "offset = 7\nif offset >= 9:\n    offset = 1\nname = 'fig'[1:]\n"
REFERENCE = (
    "<execution_trace>\nLine 1: State: {offset=7}\nLine 2: State: {offset=7}\n"
    "Line 4: State: {offset=7, name='ig'}\n</execution_trace>"
)


def test_a_branch_taken_wrongly_is_control_flow_caused_by_the_condition():
    predicted = (
        "<execution_trace>\nLine 1: State: {offset=7}\nLine 2: State: {offset=7}\nLine 3: State: {offset=1}\n"
        "Line 4: State: {offset=1, name='ig'}\n</execution_trace>"
    )
    assert first_error(predicted, REFERENCE, CODE) == ("wrong control flow", "if offset >= 9:", 2 / 3)


def test_a_wrong_value_names_its_own_line_and_exact_and_broken_traces_are_told_apart():
    wrong_slice = REFERENCE.replace("name='ig'", "name='fi'")
    assert first_error(wrong_slice, REFERENCE, CODE) == ("wrong value", "name = 'fig'[1:]", 2 / 3)
    assert first_error(REFERENCE, REFERENCE, CODE) == ("exact", "", 1.0)
    assert first_error("Line 1: State: {offset=", REFERENCE, CODE)[0] == "invalid format"
    short = REFERENCE.replace("Line 4: State: {offset=7, name='ig'}\n", "")
    assert first_error(short, REFERENCE, CODE)[0] == "stops early"
    rows = {"a": {"code": CODE, "expected_trace": REFERENCE}}
    summary = analyse([{"id": "a", "completion": wrong_slice}, {"id": "a", "completion": REFERENCE}], rows)
    assert summary["first_error"] == {"wrong value": 1, "exact": 1}
    assert summary["source_line_kinds"] == {"wrong value <- slice": 1}
    assert summary["mean_right_prefix"] == round((2 / 3 + 1) / 2, 4)


def test_cruxeval_predictions_are_read_against_the_items_traces():
    """--benchmark-data: the references are the items' traces, made in the sandbox as an evaluation makes them."""
    from first_errors import benchmark_rows

    rows = benchmark_rows(str(ROOT / "tests" / "cruxeval_fixture.jsonl"), 3)
    assert list(rows) == ["sample_0", "sample_1", "sample_2"]
    row = rows["sample_2"]
    assert row["code"].endswith("result = f('abc', 2)") and "result='abcabc2'" in row["expected_trace"]
    cut = row["expected_trace"].split("\n")
    short = "\n".join(cut[:-2] + cut[-1:])  # the last step (result = ...) missing
    summary = analyse(
        [{"id": "sample_2", "completion": row["expected_trace"]}, {"id": "sample_2", "completion": short}], rows
    )
    assert summary["first_error"] == {"exact": 1, "stops early": 1}
