"""The build pipeline: programs → (in workers: generate, normalize, trace, make the row) → deduplicate →
split → save.

Follow one program: a stream position (or a line of the user's JSONL) goes to a worker, where
`rows.ProgramJob.run` generates its code, normalizes it, traces it and builds its row with `format_trace` and
`make_prompt`. The parent appends the row to an Arrow file as soon as it arrives (memory does not grow with
n), then `_select` walks the results in position order: the first program of each normalized form is kept,
later ones are duplicates, so the dataset depends only on the seed and not on which worker finished first.
`split_by_skeleton` puts every program of one structure on the same side, and `_save` writes the DatasetDict
and `report.json` to a temporary folder and moves it into place only when everything succeeded.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import random
import shutil
import signal
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from .cgroups import TreeLimits
from .cgroups import probe as probe_cgroups
from .generator import DRILL_KINDS
from .rows import ProgramJob
from .sandbox import Sandbox, SandboxUnavailable, resolve
from .trace import storable
from .tracer import TraceLimits
from .workers import WorkerLimits, WorkerStartError, run_in_workers

DEFAULT_OUTPUT = Path("data/execution-traces")
DEFAULT_TEST_SIZE = 1 / 6  # about 100 of 600
GENERATED_PER_PROCESS = 64  # generated programs traced in one forked process (a fork costs ~3 ms of CPU on a VM)


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
    shard: tuple[int, int] = (0, 1)  # (i, k): this build takes stream positions p with p % k == i
    sandbox: str = "auto"  # auto | bwrap | none (sandbox.py)
    drill_share: float = 0.0  # share of the train split that is drills (generator.build_drill), never in test
    drill_kind: str = "snippets"  # which drills: generator.DRILL_KINDS
    drill_max_steps: int | None = None  # drills with longer traces are dropped (None: max_steps)


@dataclass
class BuildReport:
    output: str
    source: str
    seed: int | None
    python_version: str
    sandbox: str  # what isolated the traced programs: "bubblewrap 0.8.0 + seccomp" or "none"
    process_limits: str  # what bounded a worker's whole process tree: a cgroup, or rlimits per process only
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
    notes: list[str] = field(default_factory=list)  # for the user, printed by the CLI
    drill_ids: list[str] = field(default_factory=list)  # the train split's drills (--drill-share), in stream order


def dataset_features():
    """The columns every stage relies on (docs/design.md §6)."""
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
        text = Path(path).read_text(encoding="utf-8-sig")  # a byte-order mark at the start is allowed
    except UnicodeDecodeError as exc:
        raise BuildError(f"--programs file {path} is not UTF-8 text (byte {exc.start}).") from None
    except OSError as exc:
        raise BuildError(f"Cannot read --programs file {path}: {exc.strerror or exc}.") from None
    programs = []
    ids = set()
    # Lines end at "\n" only: str.splitlines would also break at U+2028 and other characters that JSON strings
    # may hold raw.
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise BuildError(f"{path}, line {number}: not valid JSON.") from None
        except RecursionError:
            raise BuildError(f"{path}, line {number}: JSON nested too deeply.") from None
        if not isinstance(record, dict) or not isinstance(record.get("code"), str):
            raise BuildError(f'{path}, line {number}: expected an object with a string "code".')
        program_id = record.get("id")
        if program_id is not None:
            program_id = storable(str(program_id))  # a JSON "\\udcff" escape would stop the Arrow writer
            if program_id in ids:
                raise BuildError(f"{path}, line {number}: id {program_id!r} appears twice.")
            ids.add(program_id)
        programs.append((program_id, record["code"]))
    if not programs:
        raise BuildError(f"{path} holds no programs.")
    return programs


@dataclass
class _Outcome:
    """What the parent keeps of one traced program: enough to deduplicate, split and report."""

    id: str
    norm: str  # hash of the normalized form ("" when it did not parse)
    failure: str
    row_index: int = -1  # where its row sits in the staging Arrow file
    skeleton: str = ""
    constructs: tuple = ()
    num_steps: int = 0
    num_lines: int = 0
    digest: str = ""  # of what the program did (steps, output, error): two runs must agree (`_rerun`)


def _digest(row: dict) -> str:
    return hashlib.sha256(json.dumps([row["steps"], row["stdout"], row["error"]]).encode()).hexdigest()


class _RowSink:
    """Rows go straight to an Arrow file as they arrive; only a small `_Outcome` per program stays in memory."""

    def __init__(self, path: Path):
        from datasets.arrow_writer import ArrowWriter

        self.writer = ArrowWriter(features=dataset_features(), path=str(path), writer_batch_size=1000)
        self.rows = 0
        self.stage_seconds: Counter = Counter()  # worker seconds by stage, summed over workers

    def add(self, result: dict) -> _Outcome:
        self.stage_seconds.update(result.get("seconds", {}))
        row = result.get("row")
        outcome = _Outcome(result.get("id") or "", result.get("norm", ""), result.get("failure", ""))
        if row is not None and not outcome.failure:
            self.writer.write(row)
            outcome.row_index, self.rows = self.rows, self.rows + 1
            outcome.skeleton, outcome.constructs = row["skeleton"], tuple(row["constructs"])
            outcome.num_steps, outcome.num_lines = row["num_steps"], row["num_lines"]
            outcome.digest = _digest(row)
        return outcome

    def close(self) -> None:
        self.writer.finalize()


def _select(outcomes: dict[int, _Outcome], limit: int | None) -> tuple[list[int], list[dict]]:
    """Walk results in position order: keep the first program of each normalized form (up to `limit`),
    reject later copies and failures. Returns (kept positions, rejections)."""
    seen: dict[str, str] = {}
    kept, rejected = [], []
    for position in sorted(outcomes):
        if limit is not None and len(kept) >= limit:
            break
        outcome = outcomes[position]
        if outcome.norm and outcome.norm in seen:
            rejected.append({"id": outcome.id, "reason": f"duplicate of {seen[outcome.norm]}", "position": position})
            continue
        if outcome.norm:
            seen[outcome.norm] = outcome.id
        if outcome.failure:
            rejected.append({"id": outcome.id or f"#{position}", "reason": outcome.failure})
        else:
            kept.append(position)
    return kept, rejected


def _trace_all(
    items,
    job: ProgramJob,
    options: BuildOptions,
    sandbox: Sandbox,
    tree: TreeLimits,
    sink: _RowSink,
    outcomes: dict,
    on_traced,
) -> None:
    limits = WorkerLimits(timeout=options.timeout, memory_mb=options.memory_mb)
    if job.seed is not None:  # the generator's own programs cannot be hostile: a process per batch, not per program
        limits.batch_size = limits.programs_per_process = GENERATED_PER_PROCESS
    results = run_in_workers(items, job, workers=options.workers, limits=limits, sandbox=sandbox, tree=tree)
    for position, result in results:
        # The parent never parses a program: one whose worker died before naming it is named by its place.
        result["id"] = result.get("id") or f"#{position}"
        outcomes[position] = sink.add(result)
        on_traced(not outcomes[position].failure)


def _generated(
    options: BuildOptions, job: ProgramJob, sandbox: Sandbox, tree: TreeLimits, sink: _RowSink, on_traced
) -> dict[int, _Outcome]:
    """Trace stream positions in rounds until `n` unique programs are kept. A shard `i/k` takes positions
    i, i + k, i + 2k, ...: shards of one seed never overlap, and `merge_datasets` joins them."""
    index, count = options.shard
    outcomes: dict[int, _Outcome] = {}
    next_position = 0  # counts this shard's positions
    while True:
        kept, _ = _select(outcomes, options.n)
        if len(kept) >= options.n:
            return outcomes
        if next_position > 50 * options.n + 1000:
            raise BuildError(f"The generator ran out of new programs after {len(kept)}; ask for fewer with --n.")
        want = math.ceil((options.n - len(kept)) * 1.05) + 8
        positions = [index + count * c for c in range(next_position, next_position + want)]
        next_position += want
        _trace_all([(p, p) for p in positions], job, options, sandbox, tree, sink, outcomes, on_traced)


def _drills(
    count: int,
    options: BuildOptions,
    job: ProgramJob,
    sandbox: Sandbox,
    tree: TreeLimits,
    sink: _RowSink,
    taken: set[str],
    test_skeletons: set[str],
) -> list[_Outcome]:
    """`count` drills for the train split, traced like any program, in stream order: none that failed, repeats
    a kept program or another drill, or shares a structure with a test program (that would leak the test)."""
    outcomes: dict[int, _Outcome] = {}
    kept: list[_Outcome] = []
    next_position = 0
    while len(kept) < count:
        if next_position > 50 * count + 1000:
            raise BuildError(f"The generator ran out of new drills after {len(kept)}; ask for a smaller --drill-share.")
        want = math.ceil((count - len(kept)) * 1.3) + 8
        positions = range(next_position, next_position + want)
        next_position += want
        _trace_all(
            [(p, (options.drill_kind, p)) for p in positions],
            job,
            options,
            sandbox,
            tree,
            sink,
            outcomes,
            lambda ok: None,
        )
        kept, seen = [], set(taken)
        for position in sorted(outcomes):
            drill = outcomes[position]
            if (
                len(kept) < count
                and not drill.failure
                and drill.norm not in seen
                and drill.skeleton not in test_skeletons
            ):
                kept.append(drill)
                seen.add(drill.norm)
    return kept


def interleave(programs: list, drills: list) -> list:
    """The drills spread evenly through the programs, so any first N rows (--train-limit) hold the same mix."""
    placed = [((i + 0.5) / len(programs), 0, x) for i, x in enumerate(programs)]
    placed += [((j + 0.5) / len(drills), 1, x) for j, x in enumerate(drills)]
    return [x for _, _, x in sorted(placed, key=lambda item: item[:2])]


def _from_file(
    programs: list,
    options: BuildOptions,
    job: ProgramJob,
    sandbox: Sandbox,
    tree: TreeLimits,
    sink: _RowSink,
    on_traced,
) -> dict[int, _Outcome]:
    on_traced.total = len(programs)
    outcomes: dict[int, _Outcome] = {}
    _trace_all(list(enumerate(programs)), replace(job, pid_parity=0), options, sandbox, tree, sink, outcomes, on_traced)
    _rerun(programs, outcomes, options, replace(job, pid_parity=1), sandbox, tree, on_traced)
    return outcomes


NONDETERMINISTIC = "nondeterministic: a second run traced differently"


def _rerun(
    programs: list,
    outcomes: dict[int, _Outcome],
    options: BuildOptions,
    job: ProgramJob,
    sandbox: Sandbox,
    tree: TreeLimits,
    on_traced,
) -> None:
    """Trace every kept program of a user's file once more, in new workers (another interpreter: other memory
    addresses; odd pids where the first run had even ones; later: other times), and reject those whose steps,
    output or error differ: a row must not depend on `id()`, the order of a set of objects, the clock,
    `os.urandom` or the pid. What is fixed in every worker (the hash seed, `random`'s seed) gives the same rows by itself. Two runs catch
    what differs between them; a program whose result changes rarely (a set of two objects keeps its order half
    the time) can pass. The builder's own generated programs use none of these and are traced once."""
    # Kept programs only (no duplicates), in reverse order: each is forked from a template that prepared other
    # programs before it (other heap addresses, so another order for a set of objects).
    again = [(position, programs[position]) for position in reversed(_select(outcomes, None)[0])]
    on_traced.total += len(again)
    limits = WorkerLimits(timeout=options.timeout, memory_mb=options.memory_mb)
    for position, result in run_in_workers(
        again, job, workers=options.workers, limits=limits, sandbox=sandbox, tree=tree
    ):
        row = result.get("row")
        if result.get("failure") or row is None or _digest(row) != outcomes[position].digest:
            outcomes[position].failure = NONDETERMINISTIC
        on_traced(True)


# ---------------------------------------------------------------------------------------------------------
# Split and save


def split_by_skeleton(skeletons: list[str], test_size: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of (train, test): whole skeleton groups go to test, in a seeded random order, until it holds
    about `test_size` programs (a fraction below 1, else a count). No skeleton lands in both splits."""
    target = round(test_size * len(skeletons)) if test_size < 1 else int(test_size)
    groups: dict[str, list[int]] = {}
    for i, skeleton in enumerate(skeletons):
        groups.setdefault(skeleton, []).append(i)
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    test: set[int] = set()
    for key in order:
        if len(test) >= target:
            break
        members = groups[key]
        if len(test) + len(members) <= target or not test:
            test.update(members)
    return [i for i in range(len(skeletons)) if i not in test], sorted(test)


def _check_output(options: BuildOptions) -> None:
    output = Path(options.output)
    if output.exists() and not options.overwrite:
        raise BuildError(f"{output} already exists; pass --overwrite to replace it.")
    if output.exists() and not output.is_dir():
        raise BuildError(f"{output} exists and is not a folder.")
    parent = output.resolve().parent
    if parent.exists() and not os.access(parent, os.W_OK):
        raise BuildError(f"Cannot write to {parent}.")


def _save(rows, train: list[int], test: list[int], report: dict, output: Path) -> None:
    """Write the splits (rows picked from a memory-mapped Dataset) to a temporary sibling folder, then swap it
    in: a failure leaves any earlier dataset intact."""
    from datasets import DatasetDict

    staging = output.parent / f".{output.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        splits = DatasetDict({"train": rows.select(train), "test": rows.select(test)})
        # An empty split must still get one (empty) shard, or load_from_disk fails on it.
        splits.save_to_disk(str(staging), num_shards={name: 1 for name, split in splits.items() if not len(split)})
        (staging / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        if output.exists():
            old = output.parent / f".{output.name}.old-{os.getpid()}"
            output.rename(old)
            staging.rename(output)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _summary(values: list[int]) -> dict:
    values = sorted(values)
    if not values:
        return {"min": 0, "median": 0, "mean": 0.0, "max": 0}
    return {
        "min": values[0],
        "median": values[len(values) // 2],
        "mean": round(sum(values) / len(values), 2),
        "max": values[-1],
    }


def _reason_kind(reason: str) -> str:
    """ "duplicate of X" and "syntax error: ..." count under one name each."""
    for kind in (
        "duplicate",
        "syntax error",
        "too few lines",
        "too many lines",
        "called sys.exit",
        "too long",
        "trace too long",
        "protocol error",
        "unparsable",
        "nondeterministic",
    ):
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
    import datasets

    datasets.disable_progress_bars()  # our own progress bar and summary say what happened
    started = time.monotonic()
    if options.programs_file is None and options.n < 1:
        raise BuildError("--n must be at least 1.")
    if options.workers < 1 or options.timeout <= 0 or options.max_steps < 1 or options.test_size < 0:
        raise BuildError("--workers, --timeout and --max-steps must be positive and --test-size not negative.")
    if not 0 <= options.shard[0] < options.shard[1]:
        raise BuildError("--shard must be i/k with 0 <= i < k.")
    if options.programs_file is not None and options.shard != (0, 1):
        raise BuildError("--shard splits generated programs; split your --programs file instead.")
    if not 0 <= options.drill_share < 1:
        raise BuildError("--drill-share must be at least 0 and below 1.")
    if options.drill_kind not in DRILL_KINDS:
        raise BuildError(f"--drill-kind must be one of {', '.join(DRILL_KINDS)}.")
    if options.drill_max_steps is not None and options.drill_max_steps < 1:
        raise BuildError("--drill-max-steps must be positive.")
    if options.drill_share and (options.programs_file is not None or options.shard != (0, 1)):
        raise BuildError("--drill-share works on a whole generated build, not with --programs or --shard.")
    if options.programs_file is None and options.test_size >= max(1, options.n):
        raise BuildError(
            f"--test-size {options.test_size:g} is not below --n {options.n}: the train split would be empty."
        )
    _check_output(options)
    output = Path(options.output)
    generated = options.programs_file is None
    min_lines = options.min_lines if options.min_lines is not None else (3 if generated else None)
    max_lines = options.max_lines if options.max_lines is not None else (20 if generated else None)
    job = ProgramJob(
        TraceLimits(options.max_steps, options.max_value_chars, options.max_output_chars),
        seed=options.seed if generated else None,
        min_lines=min_lines,
        max_lines=max_lines,
    )
    programs = None if generated else read_programs_file(options.programs_file)  # refused before anything starts
    try:
        sandbox, note = resolve(options.sandbox, untrusted=not generated)
    except SandboxUnavailable as exc:
        raise BuildError(str(exc)) from None
    tree = probe_cgroups()
    output.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(output)
    workdir = output.parent / f".{output.name}.partial-{os.getpid()}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir()
    previous_sigterm = _sigterm_interrupts()
    try:
        sink = _RowSink(workdir / "rows.arrow")
        on_traced = _Progress(progress, generated, options.n)
        try:
            if generated:
                outcomes = _generated(options, job, sandbox, tree, sink, on_traced)
            else:
                outcomes = _from_file(programs, options, job, sandbox, tree, sink, on_traced)
            kept, rejected = _select(outcomes, options.n if generated else None)
            kept_outcomes = [outcomes[p] for p in kept]
            if not kept_outcomes:  # nothing is written: a dataset of no programs is nobody's dataset
                kinds = Counter(_reason_kind(r["reason"]) for r in rejected).most_common()
                why = ", ".join(f"{kind}: {count}" for kind, count in kinds)
                raise BuildError(f"none of the {len(outcomes)} programs could be kept ({why}); nothing was written.")
            train, test = split_by_skeleton([o.skeleton for o in kept_outcomes], options.test_size, options.seed)
            if not train:  # nothing is written: the build stops before saving
                raise BuildError(
                    f"--test-size {options.test_size:g} takes all {len(kept_outcomes)} kept programs, so "
                    "the train split would be empty: ask for a smaller --test-size."
                )
            drill_count = round(options.drill_share * len(train) / (1 - options.drill_share))
            drill_job = replace(
                job, trace_limits=replace(job.trace_limits, max_steps=options.drill_max_steps or options.max_steps)
            )
            drills = (
                _drills(
                    drill_count,
                    options,
                    drill_job,
                    sandbox,
                    tree,
                    sink,
                    {o.norm for o in kept_outcomes},
                    {kept_outcomes[i].skeleton for i in test},
                )
                if drill_count
                else []
            )
        except WorkerStartError as exc:
            raise BuildError(f"The tracing workers could not start: {exc}.") from None
        sink.close()
        traced_at = time.monotonic()
        kinds = Counter(kind for o in kept_outcomes for kind in o.constructs)
        report = BuildReport(
            output=str(options.output),
            source="generated" if generated else "file",
            seed=options.seed if generated else None,
            python_version=platform.python_version(),
            sandbox=sandbox.describe(),
            process_limits=tree.describe(),
            options={
                k: (str(v) if isinstance(v, Path) else v)
                for k, v in asdict(options).items()
                if k not in ("output", "overwrite", "min_lines", "max_lines", "shard", "sandbox")
                and k not in (("programs_file",) if generated else ("n", "seed"))
            }
            | {"min_lines": min_lines, "max_lines": max_lines, "shard": "{}/{}".format(*options.shard)},
            counts={"kept": len(kept), "train": len(train) + len(drills), "test": len(test), "rejected": len(rejected)}
            | ({"drills": len(drills)} if drills else {}),
            rejected=rejected,
            rejected_by_reason=dict(Counter(_reason_kind(r["reason"]) for r in rejected).most_common()),
            distinct_skeletons=len({o.skeleton for o in kept_outcomes}),
            construct_kinds=dict(sorted(kinds.items())),
            steps=_summary([o.num_steps for o in kept_outcomes]),
            lines=_summary([o.num_lines for o in kept_outcomes]),
            timings={
                "traced_programs": len(outcomes),
                "worker_s": {stage: round(seconds, 2) for stage, seconds in sink.stage_seconds.items()},
                "trace_phase_s": round(traced_at - started, 2),
            },
            elapsed_s=0.0,
            notes=[note] if note else [],
            drill_ids=[d.id for d in drills],
        )
        row_of = [o.row_index for o in kept_outcomes]
        from datasets import Dataset

        rows = Dataset.from_file(str(workdir / "rows.arrow"))  # memory-mapped
        train_rows = interleave([row_of[i] for i in train], [d.row_index for d in drills])
        _save(rows, train_rows, [row_of[i] for i in test], _report_json(report), output)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
    report.timings["write_s"] = round(time.monotonic() - traced_at, 2)
    report.elapsed_s = round(time.monotonic() - started, 2)
    # Record the final timings too (the folder is already complete and valid without them).
    (output / "report.json").write_text(json.dumps(_report_json(report), indent=2) + "\n")
    return report


def _report_json(report: BuildReport) -> dict:
    return {k: v for k, v in asdict(report).items() if k != "notes"}


def _sigterm_interrupts():
    """SIGTERM stops a build as Ctrl-C does (workers killed, partial output removed, nothing replaced).
    Returns the handler to put back."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        return None


def _remove_stale_partials(output: Path) -> None:
    """Remove what builds of `output` that were killed (SIGKILL, power loss) left beside it."""
    for leftover in output.parent.glob(f".{output.name}.*-*"):
        kind, _, pid = leftover.name.rpartition("-")
        if not kind.endswith((".partial", ".staging", ".old")) or not pid.isdigit() or _pid_alive(int(pid)):
            continue
        shutil.rmtree(leftover, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def merge_datasets(
    folders: list[Path], output: Path, *, test_size: float = DEFAULT_TEST_SIZE, seed: int = 0, overwrite: bool = False
) -> dict:
    """Join datasets built separately (for instance `--shard 0/4` ... `--shard 3/4` on several machines):
    drop programs that appear in more than one (same id: same normalized code), and split train/test again by
    skeleton over the whole, so that no structure ends up on both sides. Returns the merged report."""
    import datasets
    from datasets import concatenate_datasets, load_from_disk

    datasets.disable_progress_bars()
    output = Path(output)
    _check_output(BuildOptions(output=output, overwrite=overwrite))
    parts, reports = [], []
    for folder in folders:
        try:
            loaded = load_from_disk(str(folder))
            reports.append(json.loads((Path(folder) / "report.json").read_text()))
        except (OSError, ValueError) as exc:
            raise BuildError(f"{folder} is not a dataset saved by build-dataset ({type(exc).__name__}).") from None
        parts += [loaded[name] for name in ("train", "test") if name in loaded]
    rows = concatenate_datasets(parts)
    seen: set[str] = set()
    keep, rejected = [], []
    for i, program_id in enumerate(rows["id"]):
        if program_id in seen:
            rejected.append({"id": program_id, "reason": f"duplicate of {program_id}"})
        else:
            seen.add(program_id)
            keep.append(i)
    skeletons = rows["skeleton"]
    train, test = split_by_skeleton([skeletons[i] for i in keep], test_size, seed)
    report = {
        "output": str(output),
        "source": "merged",
        "merged_from": [str(f) for f in folders],
        "python_version": platform.python_version(),
        "shard_reports": [{k: r.get(k) for k in ("seed", "options", "counts")} for r in reports],
        "counts": {"kept": len(keep), "train": len(train), "test": len(test), "rejected": len(rejected)},
        "rejected": [r for rep in reports for r in rep.get("rejected", [])] + rejected,
        "distinct_skeletons": len({skeletons[i] for i in keep}),
    }
    _save(rows, [keep[i] for i in train], [keep[i] for i in test], report, output)
    return report
