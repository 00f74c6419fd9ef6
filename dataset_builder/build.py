"""The build pipeline: programs → normalize and deduplicate → trace in workers → rows → split → save.

Follow one program: `generate_programs` (or a line of the user's JSONL) gives code; `_admit` parses and
normalizes it and drops duplicates and programs outside the line range; `trace_in_workers` runs it in an
isolated worker; `_row` turns its `TraceResult` into a dataset row with `format_trace` and `make_prompt`;
`split_by_skeleton` puts every program of one structure on the same side; `_save` writes the DatasetDict and
`report.json` to a temporary folder and moves it into place only when everything succeeded.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import random
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from .trace import format_trace, make_prompt
from .tracer import TraceLimits, TraceResult
from .workers import WorkerLimits, trace_in_workers

DEFAULT_OUTPUT = Path("data/execution-traces")
DEFAULT_TEST_SIZE = 1 / 6  # about 100 of 600


class BuildError(Exception):
    """A user mistake or an unusable input: the message is one sentence for the terminal."""


@dataclass
class BuildOptions:
    output: Path = DEFAULT_OUTPUT
    n: int = 600
    seed: int = 0
    programs_file: Path | None = None
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    timeout: float = 5.0
    memory_mb: int = 1024
    max_steps: int = 1000
    max_value_chars: int = 160
    max_output_chars: int = 8192
    test_size: float = DEFAULT_TEST_SIZE  # a fraction below 1, or a number of programs
    min_lines: int | None = None  # None: 3 for generated programs, no limit for --programs
    max_lines: int | None = None  # None: 20 for generated programs, no limit for --programs
    overwrite: bool = False


@dataclass
class Candidate:
    id: str
    code: str
    constructs: tuple[str, ...] = ()
    skeleton: str = ""
    position: int = 0  # order of appearance: rows are kept in this order


@dataclass
class BuildReport:
    output: str
    source: str
    seed: int | None
    python_version: str
    options: dict
    counts: dict
    rejected: list[dict]
    rejected_by_reason: dict
    distinct_skeletons: int
    construct_kinds: dict
    steps: dict
    lines: dict
    timings: dict
    elapsed_s: float


def dataset_features():
    """The columns every stage relies on (DESIGN §4)."""
    from datasets import Features, List, Value

    from .trace import steps_features

    return Features(
        {
            "id": Value("string"),
            "code": Value("string"),
            "steps": steps_features(),
            "stdout": Value("string"),
            "error": Value("string"),
            "prompt": List({"role": Value("string"), "content": Value("string")}),
            "expected_trace": Value("string"),
            "num_lines": Value("int32"),
            "num_steps": Value("int32"),
            "constructs": List(Value("string")),
            "skeleton": Value("string"),
        }
    )


# ---------------------------------------------------------------------------------------------------------
# Inputs


def read_programs_file(path: Path) -> list[tuple[str | None, str]]:
    """`(id or None, code)` pairs from a JSONL file; a bad file is a BuildError naming the line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BuildError(f"Cannot read --programs file {path}: {exc.strerror or exc}.") from None
    programs = []
    ids = set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise BuildError(f"{path}, line {number}: not valid JSON.") from None
        if not isinstance(record, dict) or not isinstance(record.get("code"), str):
            raise BuildError(f'{path}, line {number}: expected an object with a string "code".')
        program_id = record.get("id")
        if program_id is not None:
            program_id = str(program_id)
            if program_id in ids:
                raise BuildError(f"{path}, line {number}: id {program_id!r} appears twice.")
            ids.add(program_id)
        programs.append((program_id, record["code"]))
    if not programs:
        raise BuildError(f"{path} holds no programs.")
    return programs


class _Admission:
    """Normalizes candidates, drops duplicates and programs outside the line range, remembers why."""

    def __init__(self, min_lines: int | None, max_lines: int | None):
        from .normalize import normalized_form, program_id, skeleton

        self._normalized_form, self._program_id, self._skeleton = normalized_form, program_id, skeleton
        self.min_lines, self.max_lines = min_lines, max_lines
        self.seen: dict[str, str] = {}  # normalized form -> id of the first program with it
        self.rejected: list[dict] = []

    def reject(self, program_id: str, reason: str, **extra) -> None:
        self.rejected.append({"id": program_id, "reason": reason, **extra})

    def admit(self, code: str, given_id: str | None, position: int, constructs=()) -> Candidate | None:
        try:
            normalized = self._normalized_form(code)
        except SyntaxError as exc:
            self.reject(given_id or f"#{position}", f"syntax error: {exc.msg} (line {exc.lineno})")
            return None
        except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
            self.reject(given_id or f"#{position}", f"unparsable: {type(exc).__name__}")
            return None
        program_id = given_id or self._program_id(code)
        lines = len(code.splitlines())
        if self.min_lines is not None and lines < self.min_lines:
            self.reject(program_id, f"too few lines ({lines} < {self.min_lines})")
            return None
        if self.max_lines is not None and lines > self.max_lines:
            self.reject(program_id, f"too many lines ({lines} > {self.max_lines})")
            return None
        if normalized in self.seen:
            self.reject(program_id, f"duplicate of {self.seen[normalized]}", position=position)
            return None
        self.seen[normalized] = program_id
        digest = hashlib.sha256(self._skeleton(code).encode()).hexdigest()[:16]
        return Candidate(program_id, code, tuple(constructs), digest, position)


# ---------------------------------------------------------------------------------------------------------
# Tracing


def _row(candidate: Candidate, result: TraceResult) -> dict:
    return {
        "id": candidate.id,
        "code": candidate.code,
        "steps": [step.to_row() for step in result.steps],
        "stdout": result.stdout,
        "error": result.error,
        "prompt": make_prompt(candidate.code),
        "expected_trace": format_trace(result.steps),
        "num_lines": len(candidate.code.splitlines()),
        "num_steps": len(result.steps),
        "constructs": list(candidate.constructs),
        "skeleton": candidate.skeleton,
    }


def _trace(candidates: list[Candidate], options: BuildOptions, admission: _Admission, on_traced) -> dict[int, dict]:
    """Trace candidates; return rows by candidate position; record failures as rejections."""
    trace_limits = TraceLimits(options.max_steps, options.max_value_chars, options.max_output_chars)
    worker_limits = WorkerLimits(timeout=options.timeout, memory_mb=options.memory_mb)
    rows = {}
    work = [(i, c.code) for i, c in enumerate(candidates)]
    for i, result in trace_in_workers(work, workers=options.workers, trace_limits=trace_limits, limits=worker_limits):
        candidate = candidates[i]
        if result.failure:
            admission.reject(candidate.id, result.failure)
        else:
            rows[candidate.position] = _row(candidate, result)
        on_traced(not result.failure)
    return rows


def _generated_rows(options: BuildOptions, admission: _Admission, on_traced) -> list[dict]:
    """Generate, deduplicate and trace until exactly `n` programs are kept (the first `n` in generation
    order, so the result depends only on the seed)."""
    from .generator import generate_programs

    stream = enumerate(generate_programs(options.seed))
    rows: dict[int, dict] = {}
    while len(rows) < options.n:
        want = math.ceil((options.n - len(rows)) * 1.1) + 4
        batch: list[Candidate] = []
        scanned = 0
        for position, program in stream:
            scanned += 1
            candidate = admission.admit(program.code, None, position, program.constructs)
            if candidate:
                batch.append(candidate)
                if len(batch) == want:
                    break
            if scanned > 200 * want:
                raise BuildError(f"The generator ran out of new programs after {len(rows)}; ask for fewer with --n.")
        rows.update(_trace(batch, options, admission, on_traced))
    kept_positions = sorted(rows)[: options.n]
    # Traced beyond what was needed: not rejected, just not used.
    return [rows[p] for p in kept_positions]


def _file_rows(options: BuildOptions, admission: _Admission, on_traced) -> list[dict]:
    programs = read_programs_file(options.programs_file)
    candidates = [c for i, (pid, code) in enumerate(programs) if (c := admission.admit(code, pid, i))]
    on_traced.total = len(candidates)
    rows = _trace(candidates, options, admission, on_traced)
    return [rows[p] for p in sorted(rows)]


# ---------------------------------------------------------------------------------------------------------
# Split and save


def split_by_skeleton(rows: list[dict], test_size: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Whole skeleton groups go to test, in a seeded random order, until it holds about `test_size` programs
    (a fraction below 1, else a count). No skeleton lands in both splits."""
    target = round(test_size * len(rows)) if test_size < 1 else int(test_size)
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(row["skeleton"], []).append(i)
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    test: set[int] = set()
    for key in order:
        if len(test) >= target:
            break
        members = groups[key]
        if len(test) + len(members) <= target or not test:
            test.update(members)
    return [r for i, r in enumerate(rows) if i not in test], [r for i, r in enumerate(rows) if i in test]


def _check_output(options: BuildOptions) -> None:
    output = Path(options.output)
    if output.exists() and not options.overwrite:
        raise BuildError(f"{output} already exists; pass --overwrite to replace it.")
    if output.exists() and not output.is_dir():
        raise BuildError(f"{output} exists and is not a folder.")
    parent = output.resolve().parent
    if parent.exists() and not os.access(parent, os.W_OK):
        raise BuildError(f"Cannot write to {parent}.")


def _save(train: list[dict], test: list[dict], report: BuildReport, output: Path) -> None:
    """Write to a temporary sibling folder, then swap it in: a failure leaves any earlier dataset intact."""
    import datasets
    from datasets import Dataset, DatasetDict

    datasets.disable_progress_bars()  # our own progress bar and summary say what happened
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.parent / f".{output.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        features = dataset_features()
        # from_dict, not from_list: an empty list would give a split with no columns at all
        splits = DatasetDict(
            {
                name: Dataset.from_dict({k: [row[k] for row in rows] for k in features}, features=features)
                for name, rows in (("train", train), ("test", test))
            }
        )
        # An empty split must still get one (empty) shard, or load_from_disk fails on it.
        splits.save_to_disk(str(staging), num_shards={name: 1 for name, split in splits.items() if not len(split)})
        (staging / "report.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
        if output.exists():
            old = output.parent / f".{output.name}.old-{os.getpid()}"
            output.rename(old)
            staging.rename(output)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _summary(rows: list[dict], key: str) -> dict:
    values = sorted(r[key] for r in rows)
    if not values:
        return {"min": 0, "median": 0, "mean": 0.0, "max": 0}
    return {
        "min": values[0],
        "median": values[len(values) // 2],
        "mean": round(sum(values) / len(values), 2),
        "max": values[-1],
    }


def _reason_kind(reason: str) -> str:
    """"duplicate of X" and "syntax error: ..." count under one name each."""
    for kind in ("duplicate", "syntax error", "too few lines", "too many lines", "called sys.exit"):
        if reason.startswith(kind):
            return kind
    return reason


class _Progress:
    """Counts traced programs and tells `callback(done, total)`: kept of n for generated programs (tracing
    continues until n are kept), traced of all for a file."""

    def __init__(self, callback, generated: bool, n: int):
        self.callback, self.generated = callback, generated
        self.total = n if generated else 0
        self.traced = self.kept = 0

    def __call__(self, kept: bool) -> None:
        self.traced += 1
        self.kept += kept
        if self.callback:
            self.callback(min(self.kept, self.total) if self.generated else self.traced, self.total)


def build_dataset(options: BuildOptions, progress: Callable[[int, int], None] | None = None) -> BuildReport:
    """Run the whole pipeline and save the dataset at `options.output`; `progress(done, total)` is called
    as programs are traced."""
    started = time.monotonic()
    if options.programs_file is None and options.n < 1:
        raise BuildError("--n must be at least 1.")
    if options.workers < 1 or options.timeout <= 0 or options.max_steps < 1 or options.test_size < 0:
        raise BuildError("--workers, --timeout and --max-steps must be positive and --test-size not negative.")
    _check_output(options)
    generated = options.programs_file is None
    min_lines = options.min_lines if options.min_lines is not None else (3 if generated else None)
    max_lines = options.max_lines if options.max_lines is not None else (20 if generated else None)
    admission = _Admission(min_lines, max_lines)
    on_traced = _Progress(progress, generated, options.n)

    rows = (_generated_rows if generated else _file_rows)(options, admission, on_traced)
    traced_at = time.monotonic()
    train, test = split_by_skeleton(rows, options.test_size, options.seed)

    kinds = Counter(kind for row in rows for kind in row["constructs"])
    reasons = Counter(_reason_kind(r["reason"]) for r in admission.rejected)
    report = BuildReport(
        output=str(options.output),
        source="generated" if generated else "file",
        seed=options.seed if generated else None,
        python_version=platform.python_version(),
        options={
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in asdict(options).items()
            if k not in ("output", "overwrite", "min_lines", "max_lines")
            and k not in (("programs_file",) if generated else ("n", "seed"))
        }
        | {"min_lines": min_lines, "max_lines": max_lines},
        counts={"kept": len(rows), "train": len(train), "test": len(test), "rejected": len(admission.rejected)},
        rejected=admission.rejected,
        rejected_by_reason=dict(reasons.most_common()),
        distinct_skeletons=len({r["skeleton"] for r in rows}),
        construct_kinds=dict(sorted(kinds.items())),
        steps=_summary(rows, "num_steps"),
        lines=_summary(rows, "num_lines"),
        timings={"generate_and_trace_s": round(traced_at - started, 2)},
        elapsed_s=0.0,
    )
    _save(train, test, report, options.output)
    report.timings["write_s"] = round(time.monotonic() - traced_at, 2)
    report.elapsed_s = round(time.monotonic() - started, 2)
    # Record the final timings too (the folder is already complete and valid without them).
    (Path(options.output) / "report.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    return report
