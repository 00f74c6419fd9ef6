"""CRUXEval-O asked the way CRUXEval itself asks: its two output-prediction prompts, the answer read from a
generation as its harness reads it, and the answer scored by value without running anything.

The prompt texts are CRUXEval's own, copied verbatim from `make_direct_output_prompt` and `make_cot_output_prompt`
in `prompts.py` of the CRUXEval repository (https://github.com/facebookresearch/cruxeval, commit c7c7873), under
its MIT license:

    MIT License

    Copyright (c) 2023 Meta

    Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated
    documentation files (the "Software"), to deal in the Software without restriction, including without
    limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the
    Software, and to permit persons to whom the Software is furnished to do so, subject to the following
    conditions:

    The above copyright notice and this permission notice shall be included in all copies or substantial portions
    of the Software.

    THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED
    TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL
    THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF
    CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER
    DEALINGS IN THE SOFTWARE.

How its harness reads an answer (`extract_answer` does the same):

- generation stops at the first `[/ANSWER]` (its stop word, in `inference/tasks/output_prediction.py` and in
  `openai/openai_run.py`);
- the chain-of-thought prompt: the text after the first `[ANSWER]`; where there is none, the open-model harness
  (`OutputPrediction.postprocess_generation`, raw completion) goes on with the whole generation and the chat
  harness (`extract_answer_cot_output` in `openai/openai_prompt.py`) takes its last line;
- then the text between the first and the second `==` (the right side of the assertion), stripped.

Budgets: its chat harness asks for at most 100 new tokens with the direct prompt and 1000 with the chain of
thought (`openai_run.py`); its open-model harness caps prompt and generation together at 1024 tokens.

Scoring differs in one way, on purpose: the harness executes `assert <output> == <prediction>` with the item's code
(`evaluation/utils_general.py`); model output is never run here. A prediction is right when it is a Python literal
(`ast.literal_eval`) equal to the item's `output` as a value (`benchmark.output_matches`, the comparison every
CRUXEval score here uses). An item's `output` is always a literal, so for a literal prediction this is what the
harness's `==` computes; a prediction that is not a literal (a call, an expression, `f(1)`, `__import__(...)`) is
counted wrong and nothing runs. The harness also counts wrong any prediction that contains the call itself
(`f(<input>)`); so does `score_prediction`.
"""

from __future__ import annotations

from .benchmark import literal, output_matches
from .trace import answer_text

PROMPTS = ("direct", "cot")
ANSWER_OPEN, ANSWER_CLOSE = "[ANSWER]", "[/ANSWER]"
MAX_NEW_TOKENS = {"direct": 100, "cot": 1000}  # CRUXEval's chat harness (openai/openai_run.py: max_tokens)
SOURCE = "facebookresearch/cruxeval prompts.py (MIT)"
SCORING = (
    "the answer read as CRUXEval's harness reads it; right when it is a Python literal equal to the output as "
    "a value and does not contain the call f(<input>); anything else is wrong, and nothing is ever run"
)

DIRECT_OUTPUT_PROMPT = """You are given a Python function and an assertion containing an input to the function. \
Complete the assertion with a literal (no unsimplified expressions, no function calls) containing the output when \
executing the provided code on the given input, even if the function is incorrect or incomplete. Do NOT output any \
extra information. Provide the full assertion with the correct output in [ANSWER] and [/ANSWER] tags, following the \
examples.

[PYTHON]
def f(n):
    return n
assert f(17) == ??
[/PYTHON]
[ANSWER]
assert f(17) == 17
[/ANSWER]

[PYTHON]
def f(s):
    return s + "a"
assert f("x9j") == ??
[/PYTHON]
[ANSWER]
assert f("x9j") == "x9ja"
[/ANSWER]

[PYTHON]
{code}
assert f({input}) == ??
[/PYTHON]
[ANSWER]
"""

COT_OUTPUT_PROMPT = """You are given a Python function and an assertion containing an input to the function. \
Complete the assertion with a literal (no unsimplified expressions, no function calls) containing the output when \
executing the provided code on the given input, even if the function is incorrect or incomplete. Do NOT output any \
extra information. Execute the program step by step before arriving at an answer, and provide the full assertion \
with the correct output in [ANSWER] and [/ANSWER] tags, following the examples.

[PYTHON]
def f(s):
    s = s + s
    return "b" + s + "a"
assert f("hi") == ??
[/PYTHON]
[THOUGHT]
Let's execute the code step by step:

1. The function f is defined, which takes a single argument s.
2. The function is called with the argument "hi", so within the function, s is initially "hi".
3. Inside the function, s is concatenated with itself, so s becomes "hihi".
4. The function then returns a new string that starts with "b", followed by the value of s (which is now \
"hihi"), and ends with "a".
5. The return value of the function is therefore "bhihia".
[/THOUGHT]
[ANSWER]
assert f("hi") == "bhihia"
[/ANSWER]

[PYTHON]
{code}
assert f({input}) == ??
[/PYTHON]
[THOUGHT]
"""

TEMPLATES = {"direct": DIRECT_OUTPUT_PROMPT, "cot": COT_OUTPUT_PROMPT}


def make_prompt(prompt: str, code: str, call_input: str) -> str:
    """CRUXEval's `make_direct_output_prompt` (`prompt="direct"`) or `make_cot_output_prompt` (`"cot"`) for an
    item's `code` and `input` (substituted once each, so braces in the code are left alone)."""
    head, rest = TEMPLATES[prompt].split("{code}")
    middle, tail = rest.split("{input}")
    return head + code + middle + call_input + tail


def direct_answer(call_input: str, output: str) -> str:
    """What the direct prompt asks a model to write for an item (the completion after its closing `[ANSWER]`, as
    its few-shot examples show it): the full assertion with the output, then the closing tag. `extract_answer`
    reads `output` back from it."""
    return f"assert f({call_input}) == {output}\n{ANSWER_CLOSE}"


def extract_answer(completion: str, prompt: str, chat: bool) -> str:
    """The prediction in a completion, as CRUXEval's harness reads it (see the module's docstring): after the last
    `</think>` (a thinking model; none while the thinking is unclosed), up to the first `[/ANSWER]`; with the
    chain-of-thought prompt the text after `[ANSWER]` (without one: the last line where the model was asked through
    its chat template, else the whole text); then the right side of `==`."""
    text = answer_text(completion).split(ANSWER_CLOSE, 1)[0]
    if prompt == "cot":
        if ANSWER_OPEN in text:
            text = text.split(ANSWER_OPEN)[1].strip()
        elif chat:
            return text.split("\n")[-1].strip()
    if "==" in text:
        text = text.split("==")[1].strip()
    return text.strip()


def score_prediction(completion: str, item_input: str, output: str, prompt: str, chat: bool) -> dict:
    """One completion scored on one item: its `answer` (None where nothing was read), right (`output_match`) when
    it is a Python literal equal to `output` as a value and does not contain the call `f(<input>)` (as the harness
    rules); `valid_format`: the answer is a Python literal. Nothing of the completion is ever run."""
    answer = extract_answer(completion, prompt, chat) or None
    is_literal = answer is not None and literal(answer)[0]
    right = is_literal and f"f({item_input})" not in answer and output_matches(answer, output)
    return {"answer": answer, "output_match": bool(right), "valid_format": bool(is_literal)}


def gives_back_first_argument(answer: str | None, call_input: str) -> bool:
    """Whether `answer` is the call's first argument unchanged (both read as literals, compared by `repr`, so `1`
    is not `True`): what a model answers when it skips the body's work. False where either is no literal."""
    ok_answer, value = literal(answer) if answer is not None else (False, None)
    ok_call, arguments = literal(f"({call_input},)")
    if not (ok_answer and ok_call and isinstance(arguments, tuple) and arguments):
        return False
    return repr(value) == repr(arguments[0])
