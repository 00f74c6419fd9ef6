"""Which prompt the model is trained and evaluated on: the dataset's own, or a short fixed one.

- `dataset` (the default): the `prompt` column as `build-dataset` wrote it (`dataset_builder.trace.make_prompt`:
  the full format instructions with an example, then the numbered program). About 260 tokens of instructions.
- `short`: the same numbered program under a compact statement of the same format (about 100 tokens of
  instructions, no example). Prompt tokens are paid in every SFT example, every GRPO generation and every
  evaluation prefill, so on a CPU this is a real saving (about 40% of the tokens of a 10-step program); after an
  SFT warm start the model has learned the format anyway.

The style used in training is recorded in the run (`training_run.json`), so evaluation and the model card's usage
snippet prompt the adapter the same way.
"""

from __future__ import annotations

from dataset_builder.trace import INSTRUCTIONS, make_prompt, number_lines

PROMPT_STYLES = ("dataset", "short")

SHORT_INSTRUCTIONS = """Trace this Python program inside <execution_trace> ... </execution_trace>: after each executed \
line write `Line N: State: {name=value, ...}` with every variable's repr; also `Call F at line N: State: {args}`, \
`Line N in F: ...` (indented per call depth), `Return from F at line N: VALUE`, `Exception at line N: Type: \
message`, `Output: '...'`."""


def instructions_for(style: str) -> str:
    """The instruction text a prompt style puts before the program."""
    check_style(style)
    return SHORT_INSTRUCTIONS if style == "short" else INSTRUCTIONS


def make_short_prompt(code: str) -> list[dict]:
    """The `short` chat prompt for one program (one user turn, like `make_prompt`)."""
    return [{"role": "user", "content": f"{SHORT_INSTRUCTIONS}\n\nProgram:\n```python\n{number_lines(code)}\n```"}]


def check_style(style: str) -> None:
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt style {style!r}; choose one of {', '.join(PROMPT_STYLES)}.")


def prompt_for(style: str, code: str) -> list[dict]:
    """The chat prompt for `code` in `style` (`dataset`: `make_prompt`, as build-dataset writes it)."""
    check_style(style)
    return make_short_prompt(code) if style == "short" else make_prompt(code)


def apply_prompt_style(split, style: str):
    """`split` with its `prompt` column in `style` (rebuilt from `code` for `short`; unchanged for `dataset`)."""
    check_style(style)
    if style == "dataset":
        return split
    if "code" not in split.column_names:
        raise ValueError("the short prompt is built from the 'code' column, which this dataset lacks.")
    split = split.remove_columns("prompt") if "prompt" in split.column_names else split
    return split.map(lambda row: {"prompt": prompt_for(style, row["code"])}, desc=f"{style} prompts")
