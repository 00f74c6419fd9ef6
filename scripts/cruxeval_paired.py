"""The adapter against the base's best CRUXEval prompt, paired on the same items, without asking the base again.

The base model's CRUXEval-O answers do not change between runs (greedy decoding, the same weights): they were
measured once on all 800 items and kept with one right/wrong mark per item (`results/cruxeval_base.json`,
`right_per_item`). This script takes an adapter's CRUXEval evaluation of the first N items
(`evaluate-traces --benchmark cruxeval --adapter DIR --no-base --cruxeval-prompts none --output
FOLDER/cruxeval_results.json`), pairs each of its items with the same item of every recorded base entry, and
writes the comparison: each model's output accuracy on those items, the best base entry, the adapter minus it with a paired 95% interval (`trainer.benchmark`'s paired
bootstrap), and the adapter's own right/wrong marks so the next comparison can pair with them too.

    python scripts/cruxeval_paired.py --adapter-results outputs/RUN/crux/cruxeval_results.json \\
        --base results/cruxeval_base.json --output results/cruxeval_adapter.json --label "SFT + GRPO, calls drills"
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trainer.benchmark import PAIRED_METHOD, best_base, paired_difference_ci95, scoring  # noqa: E402
from trainer.evaluate import predictions_path  # noqa: E402


def adapter_marks(results_path: Path, entry: str = "adapter") -> list[bool]:
    """The adapter's right/wrong mark for each of the first N items, from the predictions written beside its
    results (one line per item and model, in the items' order); `entry`: which of the adapter's entries
    (`adapter` in the trace notation, `adapter_cruxeval_direct` asked CRUXEval's direct prompt)."""
    marks, path = [], predictions_path(results_path, scoring())
    with open(path) as handle:
        for line in handle:
            prediction = json.loads(line)
            if prediction["model"] == entry:
                marks.append(bool(prediction["output_match"]))
    if not marks:
        raise SystemExit(f"{path} holds no {entry} predictions.")
    return marks


def how_asked(results: dict, entry: str) -> str:
    """The adapter entry's prompt, in words."""
    asked = (results.get("adapter_prompts") or {}).get(entry)
    if asked is None:
        return "trace prompt"
    return f"CRUXEval's direct prompt, {asked['format']}"


def compare(adapter: list[bool], base_record: dict) -> dict:
    """Each model's accuracy on the adapter's items (the first N), the best base entry and the paired difference
    with it."""
    n, bases = len(adapter), base_record["right_per_item"]
    if n > min(len(marks) for marks in bases.values()):
        raise SystemExit("The adapter was evaluated on items the base record does not cover.")
    right = {"adapter": adapter} | {name: [mark == "1" for mark in marks[:n]] for name, marks in bases.items()}
    models = {name: {"n": n, "output_accuracy": round(sum(r) / n, 4), "right": sum(r)} for name, r in right.items()}
    best = best_base(models)
    return {
        "items": f"indices 0..{n - 1} ({n} items)",
        "models": models,
        "best_base": best,
        "paired_difference": round((sum(right["adapter"]) - sum(right[best])) / n, 4),
        "paired_difference_ci95": paired_difference_ci95(right["adapter"], right[best]),
        "paired_difference_method": PAIRED_METHOD,
        "right_per_item": {"adapter": "".join("1" if r else "0" for r in right["adapter"])},
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter-results", type=Path, required=True, help="the adapter's cruxeval_results.json")
    parser.add_argument("--base", type=Path, default=ROOT / "results" / "cruxeval_base.json")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--label", default="adapter", help="what the adapter is, for the record")
    parser.add_argument(
        "--entry",
        default="adapter",
        help="the adapter's entry to compare: adapter (trace notation) or adapter_cruxeval_direct [default: adapter]",
    )
    args = parser.parse_args(argv)
    results = json.loads(args.adapter_results.read_text())
    if args.entry not in results["models"]:
        raise SystemExit(f"{args.adapter_results} has no {args.entry} entry: {', '.join(results['models'])}.")
    comparison = compare(adapter_marks(args.adapter_results, args.entry), json.loads(args.base.read_text()))
    own = results["models"][args.entry]
    record = {
        "what": f"CRUXEval-O: {args.label} ({how_asked(results, args.entry)}) against the base's recorded answers on "
        "the same items",
        "adapter": args.label,
        "adapter_entry": args.entry,
        "adapter_decoding": results.get("decoding"),
        "adapter_cut_off": own.get("cut_off"),
        "adapter_answered": own.get("answered"),
        "adapter_seconds": own.get("seconds"),
        "base_record": args.base.name,
        **comparison,
    }
    args.output.write_text(json.dumps(record, indent=1) + "\n")
    low, high = record["paired_difference_ci95"]
    models = record["models"]
    print(
        f"adapter {100 * models['adapter']['output_accuracy']:.1f}% vs {record['best_base']} "
        f"{100 * models[record['best_base']]['output_accuracy']:.1f}% on {models['adapter']['n']} items: "
        f"difference {100 * record['paired_difference']:+.1f} points, paired 95% interval "
        f"[{100 * low:+.1f}, {100 * high:+.1f}]"
    )


if __name__ == "__main__":
    main()
