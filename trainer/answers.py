"""Direct answers (`train-and-push --direct-answers`): the training programs that are one function called with
literal arguments (`build-dataset --drill-kind calls` makes them; CRUXEval's items have that shape) are also asked
the way CRUXEval asks, with its direct output-prediction prompt, and answered with the assertion holding the value
their trace gave `result`. The SFT warm start learns both (the trace of every program, and the output of those) from
the reference answers; GRPO samples answers to the same prompts and rewards an answer with 1 when it is the traced
value (`DirectAnswerReward`, scored as CRUXEval's harness scores it), beside the trace reward of the other prompts.
`--direct-answers-only` trains the direct answers alone (no trace prompts): the run for making a model better at
CRUXEval's own question, which training on traces alone does not do (docs/cruxeval.md).

Why: a CRUXEval answer from a predicted trace needs every step right (a median of 8 steps, often 20 or more with
long list and string states), and a 0.5B model's per-step errors compound, while asked directly the base model only
has to give the value (see docs/cruxeval.md for the measured runs). An adapter trained with direct answers is
evaluated on CRUXEval both ways, in the trace notation (`adapter`) and with the direct prompt as it was trained to
answer it (`adapter_cruxeval_direct`, the entry compared with the base model).

How the prompt reaches the model (`--direct-answers-format`): `chat`, one user turn through the chat template
(where the end of the turn ends the answer, and a thinking model thinks first), or `raw`, CRUXEval's prompt as the
model's whole input, as its harness asks open models (a 0.5B coder base answers 29.0% of CRUXEval-O that way and
23.2% through its chat template, so a raw adapter starts from its base's best). A raw completion does not end by
itself: it goes on with another worked example, so GRPO's generation stops at `[/ANSWER]` (`stop_at_answer_end`),
as CRUXEval's harness does. Raw prompts are plain text and the traces are chat turns, and one TRL dataset holds one
kind, so `raw` goes with `--direct-answers-only`.

The answers come from the traces (the data contract's `parse_trace`), so nothing runs here.
"""

from __future__ import annotations

from dataset_builder import benchmark as crux
from dataset_builder.cruxeval_prompts import (
    ANSWER_CLOSE,
    direct_answer,
    gives_back_first_argument,
    make_prompt,
    score_prediction,
)
from dataset_builder.trace import parse_trace
from trainer.rewards import THINK_OPEN, completion_text

ENTRY = "adapter_cruxeval_direct"  # the results' name of the adapter asked with CRUXEval's direct prompt
FORMATS = ("chat", "raw")  # --direct-answers-format
INPUT_COLUMN = "cruxeval_input"  # GRPO's columns of a direct-answer prompt: the call's arguments, the traced value
OUTPUT_COLUMN = "cruxeval_output"


def answer_examples(rows) -> list[dict]:
    """The direct-answer examples of the training programs (a split or a list of dicts with `code` and
    `expected_trace`), in their order: `{"id", "prompt", "answer", "input", "output"}` for every program that is a
    function called with literal arguments whose traced `result` is a literal the harness reads back whole (no `==`
    in it); `input` and `output` are the call's arguments and the traced value, as CRUXEval's items hold them. A
    call that raised has no `result`, so no answer (no CRUXEval item raises)."""
    examples = []
    for row in rows:
        result = traced_result(row["expected_trace"])
        item = None if result is None else crux.item_of(row["code"], result)
        if item is None or "==" in item["output"]:
            continue
        examples.append(
            {
                "id": row.get("id"),
                "prompt": make_prompt("direct", item["code"], item["input"]),
                "answer": direct_answer(item["input"], item["output"]),
                "input": item["input"],
                "output": item["output"],
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


def training_prompt(example: dict, form: str = "chat"):
    """A direct-answer example's prompt as the adapter is trained and asked: one user turn through the chat template
    (`chat`: where a thinking model thinks first and the end of the turn ends the answer), or CRUXEval's prompt as
    the whole input (`raw`)."""
    return example["prompt"] if form == "raw" else [{"role": "user", "content": example["prompt"]}]


def training_completion(example: dict, form: str = "chat"):
    """The reference answer in the same form as `training_prompt` (SFT's target)."""
    return example["answer"] if form == "raw" else [{"role": "assistant", "content": example["answer"]}]


def grpo_rows(rows, answers: list, *, only: bool = False, form: str = "chat"):
    """GRPO's prompts: the training programs (`rows`, unless `only`) with the direct-answer prompts (`answers`)
    spread evenly through them, so the curriculum's order and any first N steps keep the mix. A direct-answer row
    carries `cruxeval_input`/`cruxeval_output` and no `expected_trace`; a trace row the reverse: each reward scores
    its own rows and leaves the others (None). `form`: how the direct prompts reach the model (`training_prompt`)."""
    import datasets

    if not answers:
        return rows
    direct = [
        {"prompt": training_prompt(a, form), INPUT_COLUMN: a["input"], OUTPUT_COLUMN: a["output"]} for a in answers
    ]
    if only:
        return datasets.Dataset.from_list(direct)
    features = rows.features.copy()
    features[INPUT_COLUMN] = features[OUTPUT_COLUMN] = datasets.Value("string")
    traces = rows.map(lambda _: {INPUT_COLUMN: None, OUTPUT_COLUMN: None}, features=features, desc="GRPO prompts")
    empty = dict.fromkeys(rows.column_names)
    return spread_through(traces, datasets.Dataset.from_list([{**empty, **d} for d in direct], features=features))


def spread_through(traces, direct):
    """The rows of `traces` with those of `direct` (the same columns) spread evenly through them: SFT's and GRPO's
    mix of traces and direct answers."""
    import datasets

    from dataset_builder.build import interleave

    both = datasets.concatenate_datasets([traces, direct])
    return both.select(interleave(list(range(len(traces))), list(range(len(traces), len(both)))))


def stop_at_answer_end(config, tokenizer) -> str:
    """Make GRPO's generation (`config`: the GRPOConfig, before the trainer is made) end a raw completion at its
    first `[/ANSWER]`, as CRUXEval's harness reads it, instead of going on to the completion budget with another
    worked example that the loss would then train: vLLM's stop strings, or transformers' (`stop_strings`, which
    need the tokenizer in `generate`: `pass_tokenizer`). A row that stopped is padded with the end-of-sequence
    token, the first of which TRL's completion mask keeps and masks everything after, as after a chat turn's end.
    Returns the stop string."""
    if config.use_vllm:
        stop = {"stop": [ANSWER_CLOSE], "include_stop_str_in_output": True}
    else:
        stop = {"stop_strings": [ANSWER_CLOSE], "pad_token_id": tokenizer.eos_token_id}
    config.generation_kwargs = {**(config.generation_kwargs or {}), **stop}
    return ANSWER_CLOSE


def pass_tokenizer(model, tokenizer) -> None:
    """TRL 1.16 calls `model.generate(**inputs, generation_config=...)` without the tokenizer that transformers'
    stop strings need (a ValueError otherwise): give it to this model's `generate`."""
    import functools

    model.generate = functools.partial(model.generate, tokenizer=tokenizer)


class DirectAnswerReward:
    """The TRL-shaped reward of a direct answer: 1.0 when the answer in the completion is the traced value, as
    CRUXEval's harness scores it (`score_prediction`: a literal equal to the value, never run); a wrong answer 0.0,
    or `-lazy_penalty` for a lazy one, which skips the body's work (`is_lazy_answer`); None for a row that is not a
    direct-answer prompt (a trace, which `ExecutionReward` scores). TRL logs it as
    `rewards/direct_answer_reward/mean`.

    Why the penalty (`--lazy-answer-penalty`): GRPO learns only where a prompt's completions score differently.
    Without it a group of wrong answers all score 0 and teach nothing, while a call that returns its argument
    unchanged rewards giving the argument back: an hour of it on the CPU raised the base's 197 such answers to
    CRUXEval's 800 items to 358, 123 of them right (docs/cruxeval.md)."""

    __name__ = "direct_answer_reward"

    def __init__(self, thinking: bool = False, lazy_penalty: float = 0.0):
        self.thinking = thinking
        self.lazy_penalty = lazy_penalty

    def __call__(self, prompts=None, completions=None, completion_ids=None, **columns) -> list:
        inputs, outputs = columns.get(INPUT_COLUMN), columns.get(OUTPUT_COLUMN)
        if inputs is None or outputs is None:
            raise KeyError(f"the direct-answer reward needs the columns {INPUT_COLUMN!r} and {OUTPUT_COLUMN!r}")
        prefix = THINK_OPEN if self.thinking else ""
        return [
            None if output is None else self.score(prefix + completion_text(c), call_input, output)
            for c, call_input, output in zip(completions or [], inputs, outputs, strict=True)
        ]

    def score(self, completion: str, call_input: str, output: str) -> float:
        scored = score_prediction(completion, call_input, output, "direct", chat=True)
        if scored["output_match"]:
            return 1.0
        return -self.lazy_penalty if is_lazy_answer(scored, call_input) else 0.0

    def __repr__(self) -> str:
        return f"DirectAnswerReward(thinking={self.thinking}, lazy_penalty={self.lazy_penalty:g})"


def is_lazy_answer(scored: dict, call_input: str) -> bool:
    """Whether a wrong direct answer (`score_prediction`'s result) does none of the call's work: no literal read
    (cut off, or no assertion), or the call's first argument given back unchanged."""
    return not scored["valid_format"] or gives_back_first_argument(scored["answer"], call_input)
