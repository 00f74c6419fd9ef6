"""CRUXEval-O through predicted traces: the benchmark's items as programs, and how an answer is scored.

CRUXEval (MIT; the Hub dataset `cruxeval-org/cruxeval`, split `test`, also distributed as a JSONL file) has items
`{"code": "def f(...): ...", "input": "<the call's argument list as source>", "output": "<a literal>", "id": ...}`.
CRUXEval-O asks for the output. A world model answers it by predicting a trace:

- the item becomes the program `<code>\\nresult = f(<input>)` (`program_of`), prompted exactly as the dataset's
  programs are (`trace.make_prompt`, or the run's prompt style);
- the answer is the value of `result` in the last module-level state of the predicted trace (`answer_of`: the
  trace contract's `parse_trace` and `final_state`; nothing else parses a trace);
- it is right when it equals `output` as a Python value (`output_matches`: `ast.literal_eval` on both, Python's
  `==` as CRUXEval's own harness compares; the texts, whitespace outside strings ignored, where either side is not
  a literal).

The project's own tracer answers every item the same way (`tracer_scores`), through the sandboxed workers (the
items are code from elsewhere, so they never run in this process): anything short of 100% there is a bug in this
harness, not in a model. No torch here: the tracer-only check runs without the training extra.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

from .trace import TRACE_OPEN, answer_text, final_state, format_trace, normalize_value, parse_trace
from .tracer import TraceLimits

NAME = "cruxeval"
HUB_ID = "cruxeval-org/cruxeval"
SPLIT = "test"
COLUMNS = ("code", "input", "output")  # required; `id` is optional (else the item's position)
RESULT = "result"
# Larger than the builder's defaults, so no item's `result` is cut short and no long loop is dropped.
TRACE_LIMITS = TraceLimits(max_steps=10_000, max_value_chars=4096, max_output_chars=8192)
FILE_SUFFIXES = (".jsonl", ".json", ".parquet")


class BenchmarkError(Exception):
    """A user mistake about the benchmark data; its message is one sentence."""


# ---------------------------------------------------------------------------------------------------------
# Loading


def load_items(spec: str | None = None, *, limit: int | None = None) -> list[dict]:
    """The benchmark's items (`id`, `code`, `input`, `output`, all strings), in order, the first `limit` of them.
    `spec`: a local JSONL or parquet file, or a Hub dataset id (split `test`) [default: cruxeval-org/cruxeval]."""
    spec = spec or HUB_ID
    if limit is not None and limit < 1:
        raise BenchmarkError("--benchmark-limit (or --limit) must be at least 1.")
    path = Path(spec).expanduser()
    if path.exists():
        if path.is_dir():
            raise BenchmarkError(
                f"{spec} is a folder; the benchmark data is a JSONL or parquet file or a Hub dataset id."
            )
        records = _read_file(path, spec)
    elif spec.startswith((".", "/", "~")) or spec.count("/") != 1 or spec.endswith(FILE_SUFFIXES):
        raise BenchmarkError(
            f"the benchmark data {spec} does not exist (expected a JSONL or parquet file or a Hub "
            "dataset id like cruxeval-org/cruxeval)."
        )
    else:
        records = _read_hub(spec)
    items = check_items(records, spec)
    return items[:limit] if limit else items


def _read_file(path: Path, spec: str) -> list:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises several types for a file that is not parquet
            raise BenchmarkError(f"{spec} is not a readable parquet file ({_first_line(exc)}).") from None
    if suffix not in (".jsonl", ".json"):
        raise BenchmarkError(f"{spec} is neither a .jsonl nor a .parquet file.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchmarkError(f"{spec} cannot be read as UTF-8 text ({_first_line(exc)}).") from None
    if suffix == ".json" and text.lstrip().startswith("["):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise BenchmarkError(f"{spec} is not valid JSON ({exc}).") from None
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError as exc:
            raise BenchmarkError(f"line {number} of {spec} is not JSON ({exc}).") from None
    return records


def _read_hub(spec: str) -> list:
    try:
        import datasets

        data = datasets.load_dataset(spec, split=SPLIT)
    except Exception as exc:  # the Hub client raises many kinds: offline, missing, private, no such split
        raise BenchmarkError(
            f"could not load the benchmark {spec} (split {SPLIT}) from the Hub: {_first_line(exc)}"
        ) from None
    missing = [c for c in COLUMNS if c not in data.column_names]
    if missing:
        raise BenchmarkError(_missing_columns(spec, missing))
    return data.to_list()


def check_items(records, spec: str) -> list[dict]:
    """The records as items, or a one-sentence error: every one an object with string `code`, `input` and
    `output`; `id` defaults to `item_<position>`."""
    if not isinstance(records, list) or not records:
        raise BenchmarkError(f"{spec} holds no benchmark items.")
    items = []
    for position, record in enumerate(records):
        if not isinstance(record, dict):
            raise BenchmarkError(f"item {position + 1} of {spec} is not an object with code, input and output.")
        missing = [c for c in COLUMNS if c not in record]
        if missing:
            raise BenchmarkError(_missing_columns(spec, missing, position))
        wrong = [c for c in COLUMNS if not isinstance(record[c], str)]
        if wrong:
            raise BenchmarkError(
                f"item {position + 1} of {spec}: {', '.join(wrong)} must be text (Python source), as in CRUXEval."
            )
        given = record.get("id")
        items.append(
            {"id": str(given) if given not in (None, "") else f"item_{position}", **{c: record[c] for c in COLUMNS}}
        )
    return items


def _missing_columns(spec: str, missing: list, position: int | None = None) -> str:
    where = f"item {position + 1} of {spec}" if position is not None else spec
    return (
        f"{where} has no {', '.join(missing)} column{'s' if len(missing) > 1 else ''} (a CRUXEval item has "
        "code, input, output and id)."
    )


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def describe_source(spec: str | None) -> str:
    """How records and cards name the data: a Hub id as it is, a file by its name only (never a path)."""
    spec = spec or HUB_ID
    path = Path(spec).expanduser()
    return f"{path.name} (a local file)" if path.exists() else spec


# ---------------------------------------------------------------------------------------------------------
# Items as programs, answers and scores


def structure_of(code: str) -> str | None:
    """A program's structure, as the builder splits train from test by it: the hash of its skeleton (names and
    constants abstracted, `normalize.forms`); None where it does not parse. Parsing runs nothing."""
    from .normalize import forms, id_of_normalized

    try:
        return id_of_normalized(forms(code)[1])
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def program_of(item: dict) -> str:
    """The program a world model traces for an item: its code, then the call."""
    return f"{item['code']}\n{RESULT} = f({item['input']})"


def item_of(program: str, output: str | None = None) -> dict | None:
    """The inverse of `program_of`: for a program that is imports, one function `f`, then `result = f(<literal
    arguments>)` on one line (an item's shape, and that of `build-dataset --drill-kind calls`), the item
    `{"code", "input", "output"}`; None for any other program, or where `output` (the traced value of `result`) is not a literal.
    Parsing runs nothing."""
    head, _, call = program.rstrip().rpartition("\n")
    prefix = f"{RESULT} = f("
    if not (call.startswith(prefix) and call.endswith(")")) or (output is not None and not literal(output)[0]):
        return None
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    *imports, function, assign = tree.body if len(tree.body) >= 2 else (None, None)
    if not (
        all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in imports)
        and isinstance(function, ast.FunctionDef)
        and function.name == "f"
    ):
        return None
    value = assign.value if isinstance(assign, ast.Assign) else None
    if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "f"):
        return None
    try:
        for argument in [*value.args, *(k.value for k in value.keywords)]:
            ast.literal_eval(argument)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return None
    return {"code": head, "input": call[len(prefix) : -1], "output": output}


def answer_of(parsed) -> str | None:
    """The value of `result` in the last module-level state of a parsed answer (`parse_trace(answer_text(...))`),
    or None when there is no trace block or no `result` in it."""
    if not parsed.found_block:
        return None
    return final_state(parsed.steps).get(RESULT)


def literal(text: str):
    """`(True, value)` for a Python literal, else `(False, None)`. Never raises (model output is parsed)."""
    try:
        return True, ast.literal_eval(text.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def output_matches(answer: str | None, output: str) -> bool:
    """Whether `answer` (a value as the trace shows it) is `output`: equal as Python values when both are
    literals, else the same text up to whitespace outside string literals."""
    if answer is None:
        return False
    ok_answer, got = literal(answer)
    ok_output, want = literal(output)
    if ok_answer and ok_output:
        try:
            return bool(got == want)
        except Exception:  # noqa: BLE001 (a comparison of literals should not raise; never let it)
            return False
    return normalize_value(answer.strip()) == normalize_value(output.strip())


def score_completion(completion: str, output: str) -> dict:
    """What one completion scored on one item: its answer (read after the last `</think>`, as the reward reads
    it; a caller whose prompt opened the `<think>` block puts it in front), whether that is `output`, and whether
    its trace block is well formed (closed, every line parsed)."""
    parsed = parse_trace(answer_text(completion))
    answer = answer_of(parsed)
    return {"answer": answer, "output_match": output_matches(answer, output), "valid_format": parsed.valid}


def summarize(predictions: list[dict]) -> dict:
    """The benchmark's metrics: means over the per-item scores (`cut_off` where generation recorded it)."""

    def mean(key):
        values = [float(bool(p[key])) for p in predictions]
        return sum(values) / len(values) if values else 0.0

    metrics = {
        "n": len(predictions),
        "output_accuracy": mean("output_match"),
        "valid_format": mean("valid_format"),
        "answered": float(sum(p["answer"] is not None for p in predictions) / len(predictions)) if predictions else 0.0,
    }
    if predictions and all(p.get("cut_off") is not None for p in predictions):
        metrics["cut_off"] = mean("cut_off")
    return metrics


# ---------------------------------------------------------------------------------------------------------
# The items traced in sandboxed workers: reference traces, and the tracer's own answers


def trace_items(items: list[dict], *, sandbox=None, workers: int = 2, timeout: float = 5.0) -> list:
    """Every item's program traced in sandboxed worker processes (one fresh process per item: this is code from
    elsewhere); `TraceResult`s in item order. `sandbox`: a `sandbox.Sandbox` [default: bubblewrap, refused with
    a one-sentence `SandboxUnavailable` where it cannot run]."""
    from .sandbox import resolve
    from .workers import WorkerLimits, trace_in_workers

    if sandbox is None:
        sandbox, _ = resolve("auto", untrusted=True)
    results: list = [None] * len(items)
    programs = [(i, program_of(item)) for i, item in enumerate(items)]
    for index, result in trace_in_workers(
        programs,
        workers=max(1, workers),
        trace_limits=TRACE_LIMITS,
        limits=WorkerLimits(timeout=timeout),
        sandbox=sandbox,
    ):
        results[index] = result
    return results


def reference_traces(traces: list) -> list[str]:
    """The trace text of every traced item ("" where tracing failed)."""
    return [format_trace(t.steps) if not t.failure else "" for t in traces]


def tracer_scores(items: list[dict], traces: list) -> list[dict]:
    """The tracer's answers scored exactly as a model's: its trace text through the same parse and comparison."""
    predictions = []
    for item, trace, text in zip(items, traces, reference_traces(traces)):
        scores = (
            score_completion(text, item["output"])
            if text.startswith(TRACE_OPEN)
            else {"answer": None, "output_match": False, "valid_format": False}
        )
        predictions.append(
            {
                "model": "tracer",
                "id": item["id"],
                "completion": text,
                **scores,
                "expected": item["output"],
                **({"failure": trace.failure} if trace.failure else {}),
            }
        )
    return predictions
