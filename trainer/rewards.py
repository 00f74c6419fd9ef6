"""The reward: one completion, one reference trace, one number in [0, 1].

All scoring lives in `dataset_builder.trace.compare_traces` (the one definition behind the reward and every
metric); this module only adapts it to what TRL's `GRPOTrainer` hands a reward function:

    reward(prompts=[...], completions=[...], completion_ids=[...], expected_trace=[...], <other columns>...)

With a chat dataset a completion is `[{"role": "assistant", "content": "..."}]`. With a thinking chat template
(Qwen3-Thinking) the generation prompt already ends with `<think>\\n`, so the completion holds the rest of the
thinking, `</think>`, then the answer; a completion without `</think>` was cut off while thinking and gets
nothing for whatever trace-like text it drafted there.
"""

from __future__ import annotations

import math

from dataset_builder.trace import compare_traces

__all__ = ["score_trace", "compare_completion", "completion_text", "ExecutionReward"]

THINK_OPEN = "<think>\n"


def score_trace(prediction: str, reference: str) -> float:
    """The gradual execution reward of a model's `prediction` (thinking allowed; the answer is read after the last
    `</think>`) against the `reference` trace text: 1.0 for an exact trace, about 0 for the right format with wrong
    values, partial credit for right lines and right values in order. Never raises: junk scores 0."""
    try:
        return clamp_score(compare_traces(str(prediction), str(reference)).score)
    except Exception:  # the parser is lenient by contract; this guards training against any regression in it
        return 0.0


def clamp_score(score) -> float:
    """A comparison's score as a reward: a float in [0, 1] (NaN or junk become 0)."""
    if not isinstance(score, (int, float)) or math.isnan(score):
        return 0.0
    return min(max(float(score), 0.0), 1.0)


def compare_completion(completion: str, reference: str, *, thinking: bool = False):
    """`compare_traces` for a generated completion: with a thinking template the completion starts inside the
    `<think>` block the prompt opened. Evaluation uses this; the reward is its `.score`."""
    return compare_traces((THINK_OPEN if thinking else "") + str(completion), str(reference))


def completion_text(completion) -> str:
    """The generated text of a TRL completion: a plain string, or the content of a chat completion's messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    if isinstance(completion, (list, tuple)):
        return "".join(completion_text(message) for message in completion)
    return ""


class ExecutionReward:
    """The TRL-shaped reward function. `thinking=True` when the chat template's generation prompt opens a
    `<think>` block (the completion then starts inside it). Its `__name__` names the metric TRL logs:
    `rewards/execution_reward/mean`."""

    __name__ = "execution_reward"

    def __init__(self, thinking: bool = False, reference_column: str = "expected_trace"):
        self.thinking = thinking
        self.reference_column = reference_column

    def __call__(self, prompts=None, completions=None, completion_ids=None, **columns) -> list:
        completions = completions or []
        references = columns.get(self.reference_column)
        if references is None:
            raise KeyError(f"the reward needs the dataset column {self.reference_column!r} (the reference trace text)")
        prefix = THINK_OPEN if self.thinking else ""
        return [  # None: a row without a trace (a direct-answer prompt, which `trainer.answers` scores)
            None if ref is None else score_trace(prefix + completion_text(c), ref)
            for c, ref in zip(completions, references, strict=True)
        ]

    def __repr__(self) -> str:
        return f"ExecutionReward(thinking={self.thinking})"
