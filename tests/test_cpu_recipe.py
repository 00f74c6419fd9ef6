"""scripts/cpu_recipe.py's measurements after the timed run: the longer-trace programs it picks and how it breaks
their figures down by trace length (the rest of the script is the README's recipe, checked by test_docs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from cpu_recipe import by_trace_steps, held_out_of_default_build  # noqa: E402

datasets = pytest.importorskip("datasets")


@pytest.fixture(scope="module")
def default_build(tmp_path_factory):
    """A real build (the tracer in its workers), as the longer-traces stage makes one."""
    folder = tmp_path_factory.mktemp("builds") / "default"
    command = [str(Path(sys.executable).parent / "build-dataset"), "--n", "60", "--seed", "1", "--test-size", "20"]
    subprocess.run(command + ["--output", str(folder), "--quiet"], check=True, cwd=ROOT)
    return folder


def test_the_longer_traces_leave_out_every_structure_the_recipe_trained_on(default_build, tmp_path):
    test = datasets.load_from_disk(str(default_build))["test"]
    # a recipe whose training programs include the build's first 5 test programs: those must not be measured
    recipe = tmp_path / "recipe"
    datasets.DatasetDict({"train": test.select(range(5))}).save_to_disk(str(recipe))
    out = tmp_path / "held-out"
    held_out_of_default_build(default_build, str(recipe), 8, out)
    picked = datasets.load_from_disk(str(out))["test"]
    trained = set(test.select(range(5))["skeleton"])
    expected = [row["id"] for row in test if row["skeleton"] not in trained][:8]
    assert picked["id"] == expected and len(picked) == 8
    assert not trained & set(picked["skeleton"])


def test_the_longer_traces_are_counted_by_trace_length(default_build, tmp_path):
    test = datasets.load_from_disk(str(default_build))["test"]
    rows = list(test.select_columns(["id", "num_steps"]))
    predictions = tmp_path / "eval_predictions.jsonl"
    lines = [{"model": "base", "id": rows[0]["id"], "exact": True, "state_accuracy": 1.0, "output_match": True}]
    for i, row in enumerate(rows):  # the adapter exact on every other program
        lines.append(
            {"model": "adapter", "id": row["id"], "exact": i % 2 == 0, "state_accuracy": 0.5, "output_match": False}
        )
    predictions.write_text("".join(json.dumps(line) + "\n" for line in lines))
    table = by_trace_steps(predictions, default_build)
    assert [b["steps"] for b in table] == ["1-10", "11-20", "21-40", "41-more"]
    assert sum(b["n"] for b in table) == len(rows)  # the base's line is not counted
    assert sum(b["exact"] for b in table) == (len(rows) + 1) // 2
    short = sum(1 for row in rows if row["num_steps"] <= 10)
    assert table[0]["n"] == short
    assert all(b["mean_state_accuracy"] == (0.5 if b["n"] else 0.0) for b in table)


def test_the_sft_column_is_paired_with_the_base_s_best_on_the_same_items(tmp_path):
    from cpu_recipe import paired_with

    from trainer.benchmark import paired_difference_ci95

    def write(path, model_marks):
        lines = [
            {"model": model, "id": f"sample_{i}", "output_match": right}
            for model, marks in model_marks.items()
            for i, right in enumerate(marks)
        ]
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))

    base = [True, True, False, False, True, False]
    write(tmp_path / "run.jsonl", {"base_trace": [False] * 6, "base_cruxeval_direct": base, "adapter": [True] * 6})
    sft = tmp_path / "sft"
    sft.mkdir()
    write(sft / "cruxeval_predictions.jsonl", {"adapter": [True, False, True, True, True]})  # one item fewer
    paired = paired_with(tmp_path / "run.jsonl", "base_cruxeval_direct", sft)
    assert paired["paired_n"] == 5 and paired["paired_difference"] == round((4 - 3) / 5, 4)
    assert paired["paired_difference_ci95"] == paired_difference_ci95([True, False, True, True, True], base[:5])
