"""Which prompt the model is trained and evaluated on: the dataset's own, or a short fixed one.

- `dataset` (the default): the `prompt` column as `build-dataset` wrote it (`dataset_builder.trace.make_prompt`:
  the full format instructions with an example, then the numbered program). About 260 tokens of instructions.
- `short`: the same numbered program under a compact statement of the same format (about 100 tokens of
  instructions, no example). Prompt tokens are paid in every SFT example, every GRPO generation and every
  evaluation prefill, so on a CPU this is a real saving (about 40% of the tokens of a 10-step program); after an
  SFT warm start the model has learned the format anyway.
- `compact`: a short prompt that asks for the trace in the compact notation (`dataset_builder.trace`: a line step
  shows only the variables it changed), and SFT targets written in it: about half the tokens of the full trace to
  learn and to generate, and nothing to copy from step to step. The parser expands compact steps back to full
  states, so the reward and every metric are computed exactly as for a full trace.
- `minimal`: the compact notation under a few words of instructions (`MINIMAL_INSTRUCTIONS`): a model learns the
  format in the SFT warm start, so the ~130 tokens of instructions need not be paid in every training example,
  generation and evaluation prefill after it (about a third of a compact SFT example's tokens on the CPU recipe's
  data). It needs an SFT stage. The base model has not learned the format, so it is evaluated on the `compact`
  prompt (the same program, the full instructions; the row's `base_prompt`), and the results say which prompt
  each model got (`prompts`).

`target_trace` is what the model is asked to write for a row (the SFT target and the token budgets);
`expected_trace` stays the full reference every score is computed against.

The style used in training is recorded in the run (`training_run.json`), so evaluation and the model card's usage
snippet prompt the adapter the same way.
"""

from __future__ import annotations

from dataset_builder.trace import INSTRUCTIONS, format_trace, make_prompt, number_lines, parse_trace

PROMPT_STYLES = ("dataset", "short", "compact", "minimal")
COMPACT_STYLES = ("compact", "minimal")  # styles whose target is the compact notation
TARGET_COLUMN = "target_trace"
BASE_PROMPT_COLUMN = "base_prompt"  # what the base model is prompted with where it differs (`minimal`)

SHORT_INSTRUCTIONS = """Trace this Python program inside <execution_trace> ... </execution_trace>: after each executed \
line write `Line N: State: {name=value, ...}` with every variable's repr; also `Call F at line N: State: {args}`, \
`Line N in F: ...` (indented per call depth), `Return from F at line N: VALUE`, `Exception at line N: Type: \
message`, `Output: '...'`."""

COMPACT_INSTRUCTIONS = """Trace this Python program inside <execution_trace> ... </execution_trace>: after each \
executed line write `Line N: {name=value, ...}` with the repr of each variable that changed since the previous step \
of the same frame (`{}` if none, then ` del NAME` for a removed one); also `Call F at line N: State: {args}`, `Line \
N in F: ...` (indented per call depth), `Return from F at line N: VALUE`, `Exception at line N: Type: message`, \
`Output: '...'`."""

MINIMAL_INSTRUCTIONS = "Execution trace, compact notation."


def instructions_for(style: str) -> str:
    """The instruction text a prompt style puts before the program."""
    check_style(style)
    return {"short": SHORT_INSTRUCTIONS, "compact": COMPACT_INSTRUCTIONS, "minimal": MINIMAL_INSTRUCTIONS}.get(
        style, INSTRUCTIONS
    )


def base_style_for(style: str) -> str:
    """The prompt style the base model is evaluated with when an adapter was trained in `style`: the base has not
    learned the format, so `minimal` gives it the full `compact` instructions; every other style is its own."""
    return "compact" if style == "minimal" else style


def make_short_prompt(code: str, instructions: str = SHORT_INSTRUCTIONS) -> list[dict]:
    """The `short` chat prompt for one program (one user turn, like `make_prompt`)."""
    return [{"role": "user", "content": f"{instructions}\n\nProgram:\n```python\n{number_lines(code)}\n```"}]


def target_for(style: str, expected_trace: str) -> str:
    """The trace text a model prompted in `style` is asked to write for a program whose full reference trace is
    `expected_trace` (the compact notation for `compact`: it reads back as the same steps)."""
    if style not in COMPACT_STYLES or not expected_trace:
        return expected_trace
    return format_trace(parse_trace(expected_trace).steps, compact=True)


def target_of(row: dict) -> str:
    """What the model is asked to write for one row: its `target_trace` where the style set one, else the full
    reference trace."""
    return row.get(TARGET_COLUMN) or row["expected_trace"]


def target_traces(rows) -> list[str]:
    """The target text of every row (a split or a list of dicts)."""
    if isinstance(rows, list):
        return [target_of(r) for r in rows]
    return list(rows[TARGET_COLUMN] if TARGET_COLUMN in rows.column_names else rows["expected_trace"])


def check_style(style: str) -> None:
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt style {style!r}; choose one of {', '.join(PROMPT_STYLES)}.")


def prompt_for(style: str, code: str) -> list[dict]:
    """The chat prompt for `code` in `style` (`dataset`: `make_prompt`, as build-dataset writes it)."""
    check_style(style)
    return make_prompt(code) if style == "dataset" else make_short_prompt(code, instructions_for(style))


def render_prompt(tokenizer, prompt, chat_template_kwargs: dict | None = None) -> str:
    """The text a model is given for `prompt`: chat messages go through its chat template with the generation
    prompt; a string is a raw completion prompt, the whole input as it is (no template), after the BOS token where
    the tokenizer puts one before a text (generation tokenizes this text without special tokens)."""
    if not isinstance(prompt, str):
        return tokenizer.apply_chat_template(
            prompt, tokenize=False, add_generation_prompt=True, **(chat_template_kwargs or {})
        )
    bos = tokenizer.bos_token
    if bos and tokenizer(prompt).input_ids[:1] == [tokenizer.bos_token_id] and not prompt.startswith(bos):
        return bos + prompt
    return prompt


def apply_prompt_style(split, style: str):
    """`split` with its `prompt` column in `style` (rebuilt from `code` for every style but `dataset`, which keeps
    the column), for the compact styles a `target_trace` column (the compact form of `expected_trace`) and, for
    `minimal`, a `base_prompt` column (the `compact` prompt the base model is evaluated with)."""
    check_style(style)
    if style == "dataset":
        return split
    if "code" not in split.column_names:
        raise ValueError(f"the {style} prompt is built from the 'code' column, which this dataset lacks.")
    split = split.remove_columns([c for c in ("prompt", TARGET_COLUMN, BASE_PROMPT_COLUMN) if c in split.column_names])

    def restyle(row):
        out = {"prompt": prompt_for(style, row["code"])}
        if style in COMPACT_STYLES:
            out[TARGET_COLUMN] = target_for(style, row["expected_trace"])
        if base_style_for(style) != style:
            out[BASE_PROMPT_COLUMN] = prompt_for(base_style_for(style), row["code"])
        return out

    return split.map(restyle, desc=f"{style} prompts")
