"""scripts/cruxeval_paired.py: an adapter's CRUXEval answers paired, item by item, with the base's recorded ones."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_evaluation(folder: Path, adapter_right: str, entry: str = "adapter", prompts: dict | None = None) -> Path:
    """An adapter evaluation as evaluate-traces writes it: results, and the predictions beside them."""
    folder.mkdir()
    results = folder / "cruxeval_results.json"
    results.write_text(
        json.dumps(
            {
                "decoding": {"greedy": True},
                "adapter_prompts": prompts or {},
                "models": {
                    entry: {
                        "n": len(adapter_right),
                        "output_accuracy": adapter_right.count("1") / len(adapter_right),
                        "cut_off": 0.0,
                        "answered": 1.0,
                        "seconds": 1.0,
                    }
                },
            }
        )
    )
    with open(folder / "cruxeval_predictions.jsonl", "w") as handle:
        for index, mark in enumerate(adapter_right):
            handle.write(json.dumps({"model": entry, "id": f"sample_{index}", "output_match": mark == "1"}) + "\n")
    return results


def run(*args):
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cruxeval_paired.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_adapter_is_paired_with_the_best_base_on_the_same_items(tmp_path):
    base = tmp_path / "base.json"
    # 10 recorded items; the adapter saw the first 8. On those, raw gets 4 right and chat 2.
    base.write_text(json.dumps({"right_per_item": {"base_raw": "1101100011", "base_chat": "1000100000"}}))
    results = write_evaluation(tmp_path / "adapter", "11111100")
    output = tmp_path / "paired.json"
    proc = run("--adapter-results", str(results), "--base", str(base), "--output", str(output), "--label", "x")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(output.read_text())
    assert record["models"]["adapter"] == {"n": 8, "output_accuracy": 0.75, "right": 6}
    assert record["models"]["base_raw"]["right"] == 4 and record["models"]["base_chat"]["right"] == 2
    assert record["best_base"] == "base_raw" and record["paired_difference"] == 0.25
    low, high = record["paired_difference_ci95"]
    assert low < 0.25 < high and -1 <= low and high <= 1
    assert record["right_per_item"]["adapter"] == "11111100" and record["items"] == "indices 0..7 (8 items)"
    assert "+25.0 points" in proc.stdout


def test_items_the_base_record_lacks_are_refused(tmp_path):
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"right_per_item": {"base_raw": "101"}}))
    results = write_evaluation(tmp_path / "adapter", "1111")
    proc = run("--adapter-results", str(results), "--base", str(base), "--output", str(tmp_path / "out.json"))
    assert proc.returncode != 0 and "does not cover" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out.json").exists()


def test_an_adapter_asked_cruxevals_direct_prompt_is_paired_by_its_entry(tmp_path):
    """A --direct-answers-only adapter has only `adapter_cruxeval_direct`: `--entry` names it, and the record says
    how it was asked; an entry the results lack is one sentence."""
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"right_per_item": {"base_raw": "1100"}}))
    entry = "adapter_cruxeval_direct"
    results = write_evaluation(
        tmp_path / "adapter", "1110", entry, {entry: {"prompt": "cruxeval_direct", "format": "raw"}}
    )
    output = tmp_path / "paired.json"
    proc = run("--adapter-results", str(results), "--base", str(base), "--output", str(output), "--entry", entry)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(output.read_text())
    assert record["adapter_entry"] == entry and "(CRUXEval's direct prompt, raw)" in record["what"]
    assert record["models"]["adapter"]["right"] == 3 and record["paired_difference"] == 0.25
    missing = run("--adapter-results", str(results), "--base", str(base), "--output", str(tmp_path / "no.json"))
    assert missing.returncode != 0 and "has no adapter entry" in missing.stderr and "Traceback" not in missing.stderr
