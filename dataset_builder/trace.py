"""The trace data contract: the step record, its text format, the parser, and the comparison.

Every stage imports this module: the builder writes traces with `format_trace`, the hub describes them,
the trainer parses model answers with `parse_trace` and scores them with `compare_traces`. Nothing else
parses a trace.

Text format (the seed's format for straight-line code, extended for calls, returns, exceptions, output):

    <execution_trace>
    Line 1: State: {x=10}
    Line 5: State: {x=10, n=3}
      Call fact at line 1: State: {n=3}
      Line 2 in fact: State: {n=3}
      Return from fact at line 3: 6
    Line 6: State: {x=10, n=3, r=6}
    Output: '6\\n'
    Exception at line 7: ZeroDivisionError: division by zero
    </execution_trace>

- One text line per step, indented two spaces per call depth (module level = depth 0).
- `Line N[ in F]: State: {name=value, ...}`: the frame's variables *after* line N ran; `F` is the function's
  qualified name, left out at module level.
- `Call F at line N: State: {...}`: a call; the state holds the arguments; N is the `def` line.
- `Return from F at line N: VALUE`: a return (or a generator's yield) with the value's repr.
- `Exception[ in F] at line N: Type: message`: an exception raised in (or passing through) that frame.
- `Output: '...'`: what the step just above it printed, as a Python string literal.

The compact notation (`format_trace(steps, compact=True)`, a shorter target to train on) writes a line step as
`Line N[ in F]: {name=value, ...}`: only the variables the line changed since the frame's previous step (all of
them at a frame's first line step), plus ` del a, b` for names it removed; everything else is as above. The parser
reads both notations, expanding compact steps back to full states, so the comparison, the reward and every metric
mean the same thing whichever notation a model writes.

Values are `repr` strings, made single-line and bracket-balanced by `encode_value` so that a value never
needs escaping: commas, `=` and braces inside lists, dicts and strings are part of the value.

Text a program controls (values, printed output, exception messages) can hold anything, so three things are
escaped where that text enters a trace, and `parse_trace(format_trace(steps))` gives the steps back for every
trace: the block's own tags become `\x3cexecution_trace>` / `\x3c/execution_trace>` (inside a Python string
literal, the same string), lone surrogates (which no file format can store) become `\udcff`-style escapes, and
memory addresses (` at 0x7f...`, different on every run) are removed from values and from printed output.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

TRACE_OPEN = "<execution_trace>"
TRACE_CLOSE = "</execution_trace>"
EVENTS = ("line", "call", "return", "exception")
MODULE = "<module>"
INDENT = "  "


@dataclass(frozen=True)
class Step:
    """One trace event. `state` is a tuple of (name, repr) pairs; `value` is a return value's repr or an
    exception's "Type: message"; `output` is what was printed during the step."""

    line: int
    event: str = "line"
    function: str = MODULE
    depth: int = 0
    state: tuple[tuple[str, str], ...] = ()
    value: str = ""
    output: str = ""

    def to_row(self) -> dict:
        return {
            "line": self.line,
            "event": self.event,
            "function": self.function,
            "depth": self.depth,
            "state": [{"name": n, "value": v} for n, v in self.state],
            "value": self.value,
            "output": self.output,
        }

    @classmethod
    def from_row(cls, row: dict) -> "Step":
        return cls(
            line=int(row["line"]),
            event=row["event"],
            function=row["function"],
            depth=int(row["depth"]),
            state=tuple((s["name"], s["value"]) for s in row["state"]),
            value=row.get("value", ""),
            output=row.get("output", ""),
        )


def steps_features():
    """The `datasets` feature type of the `steps` column (imported lazily: `datasets` is heavy)."""
    from datasets import List, Value

    return List(
        {
            "line": Value("int32"),
            "event": Value("string"),
            "function": Value("string"),
            "depth": Value("int32"),
            "state": List({"name": Value("string"), "value": Value("string")}),
            "value": Value("string"),
            "output": Value("string"),
        }
    )


# ---------------------------------------------------------------------------------------------------------
# Values: scanning and encoding

_OPEN = "([{"
_CLOSE = ")]}"
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_MAIN_PREFIX = re.compile(r"<__main__\.")
_TAG = re.compile(r"<(?=/?execution_trace>)")


def storable(text: str) -> str:
    """`text` with lone surrogates (from `print('\\udcff')`, odd file names...) escaped: Arrow and JSON
    writers refuse them."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def escape_tags(text: str) -> str:
    """The trace block's tags written as `\\x3c...`, so program text can never end (or start) a block. Inside a
    string literal (every str/bytes repr) this is the same value."""
    return _TAG.sub(r"\\x3c", text) if "execution_trace>" in text else text


def scrub_output(text: str) -> str:
    """Printed output as stored: memory addresses removed (as in values), lone surrogates escaped."""
    if " at 0x" in text:
        text = _ADDRESS.sub("", text)
    return storable(text)


def _scan(text: str, pos: int, stop) -> tuple[int, bool]:
    """Scan a value starting at `pos`; return (end, balanced). `end` is the first position at bracket depth 0,
    outside any string literal, where `stop(text, i)` is true (or len(text)); `balanced` is false if a bracket
    closed that was never opened or a bracket or quote was left open. Unbalanced input never raises."""
    depth = 0
    quote = ""
    balanced = True
    i = pos
    n = len(text)
    while i < n:
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            if depth == 0 and stop(text, i):
                return i, False
            balanced &= depth > 0
            depth = max(depth - 1, 0)
        elif depth == 0 and stop(text, i):
            return i, balanced
        i += 1
    return n, balanced and depth == 0 and not quote


_NEXT_ITEM = re.compile(r",\s*[^\W\d]\w*\s*=(?!=)")


def _state_item_end(text: str, i: int) -> bool:
    return text[i] == "}" or (text[i] == "," and _NEXT_ITEM.match(text, i) is not None)


# Characters that end a line for str.splitlines, which the parser uses: no value may hold one.
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_BREAKS_ESCAPED = str.maketrans({c: repr(c)[1:-1] for c in _LINE_BREAKS})
_PLAIN = re.compile(
    rf"[^'\"()\[\]{{}},\s{_LINE_BREAKS}]|[^'\"()\[\]{{}},\s{_LINE_BREAKS}][^'\"()\[\]{{}},{_LINE_BREAKS}]*"
    rf"[^'\"()\[\]{{}},\s{_LINE_BREAKS}]"
)


def _is_self_contained(value: str) -> bool:
    """True if `value` scans as one balanced value inside a state, so it needs no wrapping: single-line, no
    space at either end (the parser strips), no leading `=`, balanced brackets and quotes."""
    if value.startswith("="):  # `w==x` would read as the name `w` and the value `=x`... or not: ambiguous
        return False
    if _PLAIN.fullmatch(value):  # the common case (numbers, names, True...): nothing to scan
        return True
    if not value or value != value.strip() or any(c in value for c in _LINE_BREAKS):
        return False
    end, balanced = _scan(value, 0, _state_item_end)
    return balanced and end == len(value)


def encode_value(text: str, max_chars: int) -> str:
    """Make a repr string safe to put in a trace: memory addresses removed (they change every run),
    `__main__.` dropped, over-long values truncated with a visible marker, anything that would not scan as one
    value (multi-line or unbalanced custom reprs) wrapped as a string literal."""
    if " at 0x" in text:
        text = _ADDRESS.sub("", text)
    if "<__main__." in text:
        text = _MAIN_PREFIX.sub("<", text)
    if len(text) > max_chars:
        text = f"<truncated {len(text)} chars: {text[:max_chars]!r}>"
    elif not _is_self_contained(text):
        text = f"<repr {text!r}>"
    return storable(escape_tags(text))


def normalize_value(value: str) -> str:
    """Whitespace outside string literals does not matter when values are compared."""
    out = []
    quote = ""
    i = 0
    while i < len(value):
        ch = value[i]
        if quote:
            out.append(ch)
            if ch == "\\" and i + 1 < len(value):
                out.append(value[i + 1])
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif not ch.isspace():
            out.append(ch)
        i += 1
    return "".join(out)


# ---------------------------------------------------------------------------------------------------------
# Formatting


def format_state(state) -> str:
    return "{" + ", ".join(f"{name}={value}" for name, value in state) + "}"


def format_step(step: Step, before: dict[str, str] | None = None) -> str:
    """One step as text. `before` (compact notation, line steps only): the frame's variables at its previous step;
    the line then shows only what changed (`{}` if nothing did) and ` del NAMES` for names that went away."""
    pad = INDENT * step.depth
    where = "" if step.function == MODULE else f" in {step.function}"
    if step.event == "line" and before is not None:
        changed = [(name, value) for name, value in step.state if before.get(name) != value]
        now = {name for name, _ in step.state}
        gone = [name for name in before if name not in now]
        text = f"{pad}Line {step.line}{where}: {format_state(changed)}" + (f" del {', '.join(gone)}" if gone else "")
    elif step.event == "line":
        text = f"{pad}Line {step.line}{where}: State: {format_state(step.state)}"
    elif step.event == "call":
        text = f"{pad}Call {step.function} at line {step.line}: State: {format_state(step.state)}"
    elif step.event == "return":
        text = f"{pad}Return from {step.function} at line {step.line}: {step.value}"
    elif step.event == "exception":
        text = f"{pad}Exception{where} at line {step.line}: {step.value}"
    else:
        raise ValueError(f"unknown event {step.event!r}")
    if step.output:
        text += f"\n{pad}Output: {escape_tags(repr(step.output))}"
    return text


def format_trace(steps, compact: bool = False) -> str:
    """The trace text of `steps`; `compact=True`: line steps show only what changed (the module docstring)."""
    if compact:
        frames = _Frames()
        lines = []
        for step in steps:
            lines.append(format_step(step, frames.state(step.depth)) if step.event == "line" else format_step(step))
            frames.update(step)
        body = "\n".join(lines)
    else:
        body = "\n".join(format_step(s) for s in steps)
    return f"{TRACE_OPEN}\n{body}\n{TRACE_CLOSE}" if body else f"{TRACE_OPEN}\n{TRACE_CLOSE}"


class _Frames:
    """The variables of each live frame, by call depth, as the trace so far left them: what a compact line step
    is written against and expanded from. A call starts its frame with the arguments; a return ends it."""

    def __init__(self):
        self._by_depth: dict[int, dict[str, str]] = {}

    def state(self, depth: int) -> dict[str, str]:
        return self._by_depth.get(depth, {})

    def update(self, step: Step) -> None:
        if step.event in ("line", "call"):
            self._by_depth[step.depth] = dict(step.state)
        elif step.event == "return":
            self._by_depth.pop(step.depth, None)


MAX_MESSAGE_CHARS = 1000  # of an exception's message, in the `error` column and exception steps


def one_line_message(exc: BaseException) -> str:
    """An exception as "Type: message" on one line (the `error` column and exception steps)."""
    try:
        message = str(exc)
    except BaseException:  # a user __str__ may raise anything
        message = "<str failed>"
    if len(message) > MAX_MESSAGE_CHARS:  # one line of code can raise a 30 MB message
        message = f"{message[:MAX_MESSAGE_CHARS]} <truncated {len(message)} chars>"
    message = message.replace("\\", "\\\\").translate(_BREAKS_ESCAPED).strip()  # one line, as the parser reads it
    name = type(exc).__name__
    return storable(escape_tags(f"{name}: {message}" if message else name))


# ---------------------------------------------------------------------------------------------------------
# Parsing (lenient: model output is parsed with it, so junk must never raise)

_FUNC = r"(\S+)"
_LINE_RE = re.compile(rf"Line (\d+)(?: in {_FUNC})?: State: (.*)$")
_COMPACT_LINE_RE = re.compile(rf"Line (\d+)(?: in {_FUNC})?: (\{{.*)$")
_DELETED_RE = re.compile(r"del ([^\W\d]\w*(?:, [^\W\d]\w*)*)$")
_CALL_RE = re.compile(rf"Call {_FUNC} at line (\d+): State: (.*)$")
_RETURN_RE = re.compile(rf"Return from {_FUNC} at line (\d+): ?(.*)$")
_EXCEPTION_RE = re.compile(rf"Exception(?: in {_FUNC})? at line (\d+): ?(.*)$")
_OUTPUT_RE = re.compile(r"Output: (.*)$")
_NAME_RE = re.compile(r"\s*([^\W\d]\w*)\s*=\s*")


def parse_state(text: str) -> tuple[tuple[tuple[str, str], ...], bool]:
    """Parse `{a=1, b=[1, 2]}`; returns (pairs, well_formed)."""
    text = text.strip()
    if not text.startswith("{"):
        return (), False
    pairs = []
    pos = 1
    while True:
        while pos < len(text) and text[pos] in " ,":
            pos += 1
        if pos < len(text) and text[pos] == "}":
            return tuple(pairs), text[pos + 1 :].strip() == ""
        match = _NAME_RE.match(text, pos)
        if not match:
            return tuple(pairs), False
        start = match.end()
        end, _ = _scan(text, start, _state_item_end)
        pairs.append((match.group(1), text[start:end].strip()))
        if end >= len(text):
            return tuple(pairs), False
        pos = end if text[end] == "}" else end + 1


def parse_changes(text: str, before: dict[str, str]) -> tuple[tuple[tuple[str, str], ...], bool]:
    """A compact line step's `{changed...}[ del a, b]` applied to the frame's previous variables `before`;
    returns (the full state, well_formed)."""
    end, _ = _scan(text, 1, lambda t, i: t[i] == "}")
    changes, good = parse_state(text[: end + 1])
    rest = text[end + 1 :].strip()
    deleted: set[str] = set()
    if rest:
        match = _DELETED_RE.fullmatch(rest)
        good &= match is not None
        deleted = set(match.group(1).split(", ")) if match else set()
    state = {name: value for name, value in before.items() if name not in deleted}
    state.update(changes)
    return tuple(state.items()), good


@dataclass
class ParsedTrace:
    steps: list[Step] = field(default_factory=list)
    found_block: bool = False  # an <execution_trace> block was present
    well_formed: bool = False  # the block was closed and every line in it parsed

    @property
    def valid(self) -> bool:
        return self.found_block and self.well_formed and bool(self.steps)


def answer_text(completion: str) -> str:
    """The part of a model's completion that holds its answer: after the last `</think>`. A `<think>` that
    was never closed means the answer was cut off, so there is none."""
    if "</think>" in completion:
        return completion.rsplit("</think>", 1)[1]
    if "<think>" in completion:
        return ""
    return completion


def parse_trace(text: str) -> ParsedTrace:
    """Parse the first <execution_trace> block in `text` (all of `text` if it has no opening tag)."""
    result = ParsedTrace()
    start = text.find(TRACE_OPEN)
    if start >= 0:
        result.found_block = True
        text = text[start + len(TRACE_OPEN) :]
    end = text.find(TRACE_CLOSE)
    closed = end >= 0
    if closed:
        text = text[:end]
    ok = closed and result.found_block
    frames = _Frames()
    for raw in text.splitlines():
        if not raw.strip():
            continue
        stripped = raw.lstrip(" ")
        depth = (len(raw) - len(stripped)) // len(INDENT)
        stripped = stripped.rstrip()
        step = None
        if m := _LINE_RE.match(stripped):
            state, good = parse_state(m.group(3))
            ok &= good
            step = Step(int(m.group(1)), "line", m.group(2) or MODULE, depth, state)
        elif m := _COMPACT_LINE_RE.match(stripped):
            state, good = parse_changes(m.group(3), frames.state(depth))
            ok &= good
            step = Step(int(m.group(1)), "line", m.group(2) or MODULE, depth, state)
        elif m := _CALL_RE.match(stripped):
            state, good = parse_state(m.group(3))
            ok &= good
            step = Step(int(m.group(2)), "call", m.group(1), depth, state)
        elif m := _RETURN_RE.match(stripped):
            step = Step(int(m.group(2)), "return", m.group(1), depth, value=m.group(3).strip())
        elif m := _EXCEPTION_RE.match(stripped):
            step = Step(int(m.group(2)), "exception", m.group(1) or MODULE, depth, value=m.group(3).strip())
        elif (m := _OUTPUT_RE.match(stripped)) and result.steps:
            try:
                printed = ast.literal_eval(m.group(1))
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                printed = None
            if isinstance(printed, str):
                last = result.steps[-1]
                result.steps[-1] = Step(
                    last.line, last.event, last.function, last.depth, last.state, last.value, last.output + printed
                )
                continue
            ok = False
            continue
        else:
            ok = False
            continue
        frames.update(step)
        result.steps.append(step)
    result.well_formed = ok
    return result


# ---------------------------------------------------------------------------------------------------------
# Comparison: the one definition behind the reward and every metric (docs/design.md §9)


def _state_map(step: Step) -> dict[str, str]:
    return {name: normalize_value(value) for name, value in step.state}


def same_header(a: Step, b: Step) -> bool:
    return a.event == b.event and a.function == b.function and a.line == b.line


def same_state(a: Step, b: Step) -> bool:
    """The step's observable result: variables, or the returned / raised value."""
    return _state_map(a) == _state_map(b) and normalize_value(a.value) == normalize_value(b.value)


def same_step(a: Step, b: Step) -> bool:
    return same_header(a, b) and same_state(a, b) and a.output == b.output


def step_credit(pred: Step, ref: Step) -> float:
    """Partial credit for one aligned pair, in [0, 1]: nothing unless it is the same kind of event in the same
    function; 0.1 for the right line; 0.9 for the result, half for the share of right values and half for all
    of them right *at the right line* (the line is the control flow: right values at the wrong line are only
    half right). An exact step scores 1.0; a right line with wrong values 0.1; right values at a wrong line 0.45."""
    return _credit(pred, _result_key(pred), ref, _result_key(ref))


def _result_key(step: Step):
    """What `step_credit` compares of a step's result, normalized once (normalizing is the costly part)."""
    if step.event in ("line", "call"):
        return _state_map(step)
    return normalize_value(step.value)


def _credit(pred: Step, got, ref: Step, want) -> float:
    if pred.event != ref.event or pred.function != ref.function:
        return 0.0
    right_line = pred.line == ref.line
    if ref.event in ("line", "call"):
        names = set(want) | set(got)
        share = sum(want.get(n) == got.get(n) for n in names) / len(names) if names else 1.0
        exact = want == got and pred.output == ref.output
    else:
        share = exact = float(got == want)
    return 0.1 * right_line + 0.9 * (0.5 * share + 0.5 * (exact and right_line))


def align_credit(pred: list[Step], ref: list[Step]) -> float:
    """Best total `step_credit` over order-preserving alignments (each step used at most once)."""
    if not pred or not ref:
        return 0.0
    pred_keys = [_result_key(p) for p in pred]
    previous = [0.0] * (len(pred) + 1)
    for r in ref:
        r_key = _result_key(r)
        current = [0.0] * (len(pred) + 1)
        for j, p in enumerate(pred, 1):
            current[j] = max(previous[j], current[j - 1], previous[j - 1] + _credit(p, pred_keys[j - 1], r, r_key))
        previous = current
    return previous[-1]


def printed_output(steps) -> str:
    return "".join(s.output for s in steps)


def final_state(steps) -> dict[str, str]:
    """The module's variables after its last line ran."""
    for step in reversed(steps):
        if step.event == "line" and step.depth == 0:
            return _state_map(step)
    return {}


def final_error(steps) -> str:
    """The uncaught exception, if the trace ends in one at module level."""
    if steps and steps[-1].event == "exception" and steps[-1].depth == 0:
        return normalize_value(steps[-1].value)
    return ""


@dataclass(frozen=True)
class Comparison:
    exact: bool  # same steps, same lines, same states (Execution Prediction Accuracy)
    state_accuracy: float  # share of steps right at their position: same event, function, line and state,
    # over the longer of the two traces (extra steps cost)
    output_match: bool  # same final module state, printed output and uncaught exception
    valid_format: bool  # a closed <execution_trace> block whose every line parsed
    score: float  # gradual 0-1 reward


def compare_traces(prediction: str, reference: str) -> Comparison:
    """Compare a model's completion (thinking allowed; the answer is read after the last `</think>`) with the
    reference trace text. Never raises."""
    ref = parse_trace(reference).steps
    parsed = parse_trace(answer_text(prediction))
    pred = parsed.steps
    if not parsed.found_block:
        pred = []  # no answer block: nothing to credit
    # Extra steps beyond what could ever align only cost; don't spend time aligning them.
    pred_for_alignment = pred[: 2 * len(ref) + 8]
    denominator = max(len(ref), len(pred), 1)
    score = align_credit(pred_for_alignment, ref) / denominator
    exact = len(pred) == len(ref) and all(same_step(p, r) for p, r in zip(pred, ref)) and parsed.well_formed
    matched = sum(same_header(p, r) and same_state(p, r) for p, r in zip(pred, ref))
    return Comparison(
        exact=exact,
        state_accuracy=matched / max(len(ref), len(pred)) if ref or pred else 1.0,
        output_match=bool(pred)
        and final_state(pred) == final_state(ref)
        and printed_output(pred) == printed_output(ref)
        and final_error(pred) == final_error(ref),
        valid_format=parsed.valid,
        score=1.0 if exact else min(score, 0.99),
    )


# ---------------------------------------------------------------------------------------------------------
# The prompt: what the model is shown for a program

INSTRUCTIONS = """Predict how this Python program executes, line by line.

Write the trace inside <execution_trace> ... </execution_trace>, one step per line:
- `Line N: State: {name=value, ...}`: every variable of the current frame *after* line N ran (values as repr)
- inside a function: `Line N in FUNC: State: {...}`, indented two spaces per call depth
- `Call FUNC at line N: State: {args}`, `Return from FUNC at line N: VALUE`
- `Exception at line N: Type: message` (`Exception in FUNC at line N: ...` inside a function)
- `Output: '...'` under the step that printed it

Example, for the program `x = 10` / `y = 20` / `z = 30`:
<execution_trace>
Line 1: State: {x=10}
Line 2: State: {x=10, y=20}
Line 3: State: {x=10, y=20, z=30}
</execution_trace>"""


def number_lines(code: str) -> str:
    lines = code.splitlines()
    width = len(str(len(lines)))
    return "\n".join(f"{i:>{width}} | {line}" for i, line in enumerate(lines, 1))


def make_prompt(code: str) -> list[dict]:
    """The chat prompt for one program (a single user turn, so every chat template accepts it)."""
    return [{"role": "user", "content": f"{INSTRUCTIONS}\n\nProgram:\n```python\n{number_lines(code)}\n```"}]
