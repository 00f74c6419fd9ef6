"""Direct answers (`train-and-push --direct-answers`): the training programs that are one function called with
literal arguments (`build-dataset --drill-kind calls` makes them; CRUXEval's items have that shape) are also asked
the way CRUXEval asks, with its direct output-prediction prompt, and answered with the assertion holding the value
their trace gave `result`. The SFT warm start learns both: the trace of every program, and the output of those.

Why: a CRUXEval answer from a predicted trace needs every step right (a median of 8 steps, often 20 or more with
long list and string states), and a 0.5B model's per-step errors compound, while asked directly the base model only
has to give the value (see docs/cruxeval.md for the measured runs). An adapter trained with direct answers is
evaluated on CRUXEval both ways, in the trace notation (`adapter`) and with the direct prompt through its chat
template (`adapter_cruxeval_direct`, the entry compared with the base model: the way it was trained to answer).

The answers come from the traces (the data contract's `parse_trace`), so nothing runs here.
"""

from __future__ import annotations

from dataset_builder import benchmark as crux
from dataset_builder.cruxeval_prompts import direct_answer, make_prompt
from dataset_builder.trace import parse_trace

ENTRY = "adapter_cruxeval_direct"  # the results' name of the adapter asked with CRUXEval's direct prompt


def answer_examples(rows) -> list[dict]:
    """The direct-answer examples of the training programs (a split or a list of dicts with `code` and
    `expected_trace`), in their order: `{"id", "prompt", "answer"}` for every program that is a function called with
    literal arguments whose traced `result` is a literal the harness reads back whole (no `==` in it)."""
    examples = []
    for row in rows:
        item = crux.item_of(row["code"], traced_result(row["expected_trace"]))
        if item is None or "==" in item["output"]:
            continue
        examples.append(
            {
                "id": row.get("id"),
                "prompt": make_prompt("direct", item["code"], item["input"]),
                "answer": direct_answer(item["input"], item["output"]),
            }
        )
    return examples


def traced_result(expected_trace: str) -> str | None:
    """The value of `result` after the module's last line, as the tracer wrote it (Python's repr: the spaces after
    commas kept, where the scores compare values with whitespace normalized away); None without one."""
    for step in reversed(parse_trace(expected_trace).steps):
        if step.event == "line" and step.depth == 0:
            return dict(step.state).get(crux.RESULT)
    return None
