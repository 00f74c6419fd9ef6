"""Where a model's predicted traces first go wrong: what `train-and-push` evaluated, read step by step.

    python scripts/first_errors.py outputs/run/adapter/eval_predictions.jsonl data/cpu-recipe [--model adapter]
    python scripts/first_errors.py outputs/run/crux/cruxeval_predictions.jsonl --benchmark-data cruxeval.jsonl

For each prediction of the test split (or of CRUXEval's items, traced again here in the sandbox) it walks the predicted and the reference trace (both parsed and compared as
the scorer does, `dataset_builder.trace`) to the first step that differs and sorts it: a wrong value at the right
line, wrong control flow (a wrong line or event: a branch taken or not, a loop run once too often), a wrong
return value / output / exception, a trace that stops early or runs on. It names the kind of source line that
produced the error by a rough reading of its text (a comparison, arithmetic, a slice, a string method ...): for a
wrong value the line itself, for wrong control flow the line before (the condition that decided). Prints a
summary; `--json FILE` writes it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dataset_builder.trace import answer_text, parse_trace, same_header, same_state, same_step  # noqa: E402

# Rough kinds of a source line, by its text; a line can have several.
LINE_KINDS = (
    ("comparison/boolean", r"==|!=|<=|>=|<|>|\bnot\b|\band\b|\bor\b|\bin\b"),
    ("slice", r"\[[^\]]*:[^\]]*\]"),
    (
        "string method",
        r"\.(upper|lower|strip|lstrip|rstrip|split|join|replace|find|count|startswith|endswith|title|"
        r"capitalize|zfill|center|ljust|rjust|swapcase|isdigit|isalpha|partition)\(",
    ),
    ("list method", r"\.(append|extend|pop|insert|remove|sort|reverse|copy|clear|index)\("),
    ("dict access/update", r"\.(get|items|keys|values|update|setdefault)\(|\w+\[[^\]:]+\]\s*[-+*]?="),
    ("builtin call", r"\b(sorted|sum|min|max|len|range|enumerate|zip|reversed|abs|round|divmod|int|str)\("),
    ("f-string/format", r"\bf'|\bf\"|%"),
    ("arithmetic", r"[-+*/%]|//|\*\*"),
)


def line_kinds(source: str) -> list[str]:
    return [name for name, pattern in LINE_KINDS if re.search(pattern, source)] or ["other"]


def first_error(predicted: str, reference: str, code: str) -> tuple[str, str, float]:
    """(kind of first error, the source line it came from, share of the reference's steps right before it)."""
    pred, ref = parse_trace(answer_text(predicted)), parse_trace(reference).steps
    if not pred.valid:
        return "invalid format", "", 0.0
    i = 0
    while i < min(len(pred.steps), len(ref)) and same_step(pred.steps[i], ref[i]):
        i += 1
    right = i / len(ref)
    if i == len(ref) == len(pred.steps):
        return "exact", "", 1.0
    if i == min(len(pred.steps), len(ref)):
        return ("stops early" if len(pred.steps) < len(ref) else "runs on"), "", right
    lines = code.splitlines()
    got, wanted = pred.steps[i], ref[i]
    if not same_header(got, wanted):
        return "wrong control flow", lines[ref[i - 1].line - 1] if i else "", right
    if not same_state(got, wanted):
        return "wrong value", lines[wanted.line - 1], right
    return "wrong return/output/exception", lines[wanted.line - 1], right


def analyse(predictions: list[dict], test_rows: dict[str, dict]) -> dict:
    errors, sources, right = Counter(), Counter(), []
    for prediction in predictions:
        row = test_rows[prediction["id"]]
        kind, source, share = first_error(prediction["completion"], row["expected_trace"], row["code"])
        errors[kind] += 1
        right.append(share)
        if source:
            sources.update(f"{kind} <- {k}" for k in line_kinds(source))
    return {
        "predictions": len(predictions),
        "mean_right_prefix": round(sum(right) / max(len(right), 1), 4),
        "first_error": dict(errors.most_common()),
        "source_line_kinds": dict(sources.most_common()),
    }


def benchmark_rows(spec: str, count: int) -> dict[str, dict]:
    """The first `count` CRUXEval items as rows (`code`: the item's program, `expected_trace`: the tracer's, in the
    sandbox as every evaluation traces them), by id."""
    from dataset_builder import benchmark as crux

    items = crux.load_items(spec, limit=count)
    references = crux.reference_traces(crux.trace_items(items))
    return {
        item["id"]: {"code": crux.program_of(item), "expected_trace": reference}
        for item, reference in zip(items, references)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("predictions", help="eval_predictions.jsonl of a train-and-push or evaluate-traces run")
    parser.add_argument("dataset", nargs="?", help="the dataset folder it was evaluated on (its test split)")
    parser.add_argument(
        "--benchmark-data",
        help="instead of a dataset: the CRUXEval items (a JSONL or parquet file, "
        "or a Hub id) a CRUXEval evaluation was run on",
    )
    parser.add_argument("--model", default="adapter", help="which model's predictions: base, sft or adapter")
    parser.add_argument("--json", help="also write the summary here")
    args = parser.parse_args()
    if (args.dataset is None) == (args.benchmark_data is None):
        parser.error("give the dataset folder or --benchmark-data, one of them")
    rows = [json.loads(line) for line in Path(args.predictions).read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["model"] == args.model]
    if args.benchmark_data:
        test_rows = benchmark_rows(args.benchmark_data, len(rows))  # the first N items, one prediction each
    else:
        from datasets import load_from_disk

        test_rows = {row["id"]: row for row in load_from_disk(args.dataset)["test"]}
    summary = analyse(rows, test_rows)
    print(
        f"{args.model}: {summary['predictions']} predictions, right prefix {summary['mean_right_prefix']:.1%} "
        "of the reference's steps on average"
    )
    for kind, count in summary["first_error"].items():
        print(f"  {kind}: {count}")
    print("source line of the first error (rough kinds; a line can have several):")
    for kind, count in summary["source_line_kinds"].items():
        print(f"  {kind}: {count}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
