"""How a model's direct answers to CRUXEval's question go wrong: what `evaluate-traces --benchmark cruxeval`
(or the benchmark stage of `train-and-push`) wrote for an entry asked CRUXEval's direct prompt.

    python scripts/answer_errors.py crux/cruxeval_predictions.jsonl --benchmark-data cruxeval.jsonl \
        --model adapter_cruxeval_direct [--against base.jsonl --against-model base_cruxeval_direct_raw]

Each answer is sorted: right; no answer read (cut off, or no assertion); the call's first argument given back
unchanged (a model that skips the body's work answers that way: right only where the function returns its
argument as it was); a value of another type than the right one; a wrong value of the right type. Then the share
right by the type of the right output (str, list, int, dict, bool, tuple). With `--against`, the same for a second
entry (the base) on the same items, and which items one got right and the other not. Answers are read as literals
(`ast.literal_eval`), never run. Prints a summary; `--json FILE` writes it.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dataset_builder.cruxeval_prompts import gives_back_first_argument  # noqa: E402

KINDS = ("right", "no answer", "first argument unchanged", "wrong type", "wrong value")


def literal(text: str | None):
    """The value a literal's text stands for, or a marker that it is none."""
    try:
        return ast.literal_eval(text) if text is not None else NotLiteral
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return NotLiteral


class NotLiteral:
    """What `literal` returns for text that is not a literal."""


def answer_error(prediction: dict, call_input: str) -> str:
    """The kind (one of KINDS) of one prediction, `{"answer", "expected", "output_match"}`."""
    if prediction["output_match"]:
        return "right"
    answer = literal(prediction.get("answer"))
    if answer is NotLiteral:
        return "no answer"
    if gives_back_first_argument(prediction["answer"], call_input):
        return "first argument unchanged"
    return "wrong type" if type(answer) is not type(literal(prediction["expected"])) else "wrong value"


def analyse(predictions: list[dict], inputs: dict[str, str]) -> dict:
    kinds, by_type, right_by_type, echoed = Counter(), Counter(), Counter(), Counter()
    for prediction in predictions:
        call_input, right = inputs[prediction["id"]], bool(prediction["output_match"])
        expected = literal(prediction["expected"])
        kinds[answer_error(prediction, call_input)] += 1
        by_type[type(expected).__name__] += 1
        right_by_type[type(expected).__name__] += right
        if gives_back_first_argument(prediction.get("answer"), call_input):
            echoed["answered"] += 1
            echoed["right"] += right
        echoed["truth"] += gives_back_first_argument(prediction["expected"], call_input)
    return {
        "predictions": len(predictions),
        "right": kinds["right"],
        "kinds": {kind: kinds[kind] for kind in KINDS},
        "first_argument_unchanged": {
            "answered": echoed["answered"],
            "of_them_right": echoed["right"],
            "items_where_it_is_right": echoed["truth"],
        },
        "by_output_type": {name: {"n": count, "right": right_by_type[name]} for name, count in by_type.most_common()},
    }


def read_predictions(path: str, model: str) -> list[dict]:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    rows = [row for row in rows if row["model"] == model]
    if not rows:
        raise SystemExit(f"{path} has no predictions of {model}.")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("predictions", help="the predictions JSONL of a CRUXEval evaluation")
    parser.add_argument("--benchmark-data", required=True, help="the CRUXEval items it ran on (JSONL, parquet, Hub id)")
    parser.add_argument("--model", default="adapter_cruxeval_direct", help="the entry to read")
    parser.add_argument("--against", help="a second predictions JSONL on the same items (the base's)")
    parser.add_argument("--against-model", default="base_cruxeval_direct_raw", help="its entry")
    parser.add_argument("--json", help="also write the summary here")
    args = parser.parse_args()
    from dataset_builder import benchmark as crux

    inputs = {item["id"]: item["input"] for item in crux.load_items(args.benchmark_data)}
    entries = {args.model: read_predictions(args.predictions, args.model)}
    if args.against:
        entries[args.against_model] = read_predictions(args.against, args.against_model)
    summary = {name: analyse(rows, inputs) for name, rows in entries.items()}
    for name, part in summary.items():
        echoed = part["first_argument_unchanged"]
        print(f"{name}: {part['right']} of {part['predictions']} right")
        for kind, count in part["kinds"].items():
            print(f"  {kind}: {count}")
        print(
            f"  answered with the first argument unchanged: {echoed['answered']} ({echoed['of_them_right']} right; "
            f"the right answer on {echoed['items_where_it_is_right']} items)"
        )
        print(
            "  right by the type of the right output: "
            + ", ".join(f"{t} {v['right']}/{v['n']}" for t, v in part["by_output_type"].items())
        )
    if args.against:
        one, other = ({row["id"]: row["output_match"] for row in rows} for rows in entries.values())
        shared = one.keys() & other.keys()
        summary["gained"] = sorted(i for i in shared if one[i] and not other[i])
        summary["lost"] = sorted(i for i in shared if other[i] and not one[i])
        print(
            f"{args.model} against {args.against_model} on {len(shared)} items: "
            f"{len(summary['gained'])} gained, {len(summary['lost'])} lost"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
