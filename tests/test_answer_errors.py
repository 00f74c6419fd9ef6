"""scripts/answer_errors.py: how direct answers to CRUXEval's question go wrong, read as literals only."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from answer_errors import analyse, answer_error  # noqa: E402


def prediction(answer, expected, right=False, model="adapter_cruxeval_direct", id="a"):
    return {"model": model, "id": id, "answer": answer, "expected": expected, "output_match": right}


def test_each_kind_of_wrong_answer_is_told_apart():
    assert answer_error(prediction("'ab'", "'ab'", right=True), "'ab', 2") == "right"
    assert answer_error(prediction(None, "'ab'"), "'ab', 2") == "no answer"
    assert answer_error(prediction("f('ab', 2)", "'ab'"), "'ab', 2") == "no answer"  # a call is not a literal
    assert answer_error(prediction("{'x': 1}", "{}"), "{'x': 1}") == "first argument unchanged"
    assert answer_error(prediction("3", "'abc'"), "'xyz'") == "wrong type"
    assert answer_error(prediction("'abd'", "'abc'"), "'xyz'") == "wrong value"
    # an answer that is no literal does not "repeat" an argument that is none either
    assert analyse([prediction("g(1)", "3")], {"a": "g(1)"})["first_argument_unchanged"]["answered"] == 0


def test_the_summary_counts_echoes_and_types_and_runs_nothing(tmp_path):
    canary = tmp_path / "ran"
    rows = [
        prediction("{'x': 1}", "{}", id="a"),
        prediction("[1, 2]", "[1, 2]", right=True, id="b"),
        prediction(f"__import__('os').mkdir({str(canary)!r})", "3", id="c"),
    ]
    inputs = {"a": "{'x': 1}", "b": "[1, 2], 0", "c": "5"}
    summary = analyse(rows, inputs)
    assert summary["right"] == 1 and summary["kinds"]["first argument unchanged"] == 1
    assert summary["kinds"]["no answer"] == 1 and not canary.exists()
    assert summary["first_argument_unchanged"] == {"answered": 2, "of_them_right": 1, "items_where_it_is_right": 1}
    assert summary["by_output_type"] == {
        "dict": {"n": 1, "right": 0},
        "list": {"n": 1, "right": 1},
        "int": {"n": 1, "right": 0},
    }


def test_the_script_pairs_two_entries_on_the_same_items(tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text(
        "".join(
            json.dumps({"id": i, "code": "def f(x):\n    return x", "input": "1", "output": "1"}) + "\n"
            for i in ("a", "b")
        )
    )
    adapter = tmp_path / "adapter.jsonl"
    adapter.write_text("".join(json.dumps(prediction("1", "1", right=True, id=i)) + "\n" for i in ("a", "b")))
    base = tmp_path / "base.jsonl"
    base.write_text(
        json.dumps(prediction("2", "1", model="base_cruxeval_direct_raw", id="a"))
        + "\n"
        + json.dumps(prediction("1", "1", right=True, model="base_cruxeval_direct_raw", id="b"))
        + "\n"
    )
    out = tmp_path / "summary.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "answer_errors.py"),
            str(adapter),
            "--benchmark-data",
            str(items),
            "--against",
            str(base),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    summary = json.loads(out.read_text())
    assert summary["gained"] == ["a"] and summary["lost"] == []
    assert summary["adapter_cruxeval_direct"]["right"] == 2 and summary["base_cruxeval_direct_raw"]["right"] == 1
    assert "1 gained, 0 lost" in done.stdout
