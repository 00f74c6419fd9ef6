"""One program from source to dataset row; this is what a worker runs for each program.

Generating, normalizing and tracing all happen in the workers, in parallel: the parent only deduplicates
(in position order, so the result does not depend on which worker finished first) and writes rows. Inside a
worker, `prepare` runs in the template process (it never executes the program) and `trace` in the program's own
process forked from it, so a program only ever touches its own process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from . import generator, normalize
from .trace import format_trace, make_prompt
from .tracer import TraceLimits, trace_program

MAX_CODE_CHARS = 100_000  # a longer program is rejected unparsed


@dataclass
class Prepared:
    """A program ready to trace, with what its row needs from the preparation."""

    code: str
    num_lines: int
    constructs: list
    skeleton: str  # hash of the skeleton form


@dataclass
class ProgramJob:
    """What every worker needs to know: programs come as stream positions of `seed` (generated) or as
    `(id, code)` pairs (a user's file)."""

    trace_limits: TraceLimits = field(default_factory=TraceLimits)
    seed: int | None = None
    min_lines: int | None = None
    max_lines: int | None = None
    pid_parity: int | None = None  # 0 or 1: every program's process gets a pid of it (`build._rerun`)

    @classmethod
    def from_config(cls, config: dict) -> "ProgramJob":
        """The job as the parent sent it (`dataclasses.asdict`: workers get data, never pickles)."""
        return cls(**{**config, "trace_limits": TraceLimits(**config["trace_limits"])})

    def prepare(self, payload) -> tuple[dict, "Prepared | None"]:
        """Everything before running the program: generate or take its code, normalize it (deduplication and
        skeleton), check its length. Runs in the worker's template process: nothing here executes the program.
        Returns the result so far and the program to trace (None when the result already says why not)."""
        clock = time.perf_counter()
        if self.seed is not None:
            # a position in the seed's stream, or (drill kind, position) in a stream of drills
            is_drill = isinstance(payload, (list, tuple))
            program = (
                generator.drilled_at(self.seed, *payload) if is_drill else generator.program_at(self.seed, payload)
            )
            given_id, code, constructs = None, program.code, list(program.constructs)
        else:
            (given_id, code), constructs = payload, []
        generated_at = time.perf_counter()
        result = {"id": given_id, "norm": "", "failure": "", "row": None, "seconds": {"generate": generated_at - clock}}
        if len(code) > MAX_CODE_CHARS:  # not even parsed: a program this long is no short program
            result["failure"] = f"too long ({len(code)} characters > {MAX_CODE_CHARS})"
            return result, None
        try:
            normalized, skeleton = normalize.forms(code)
        except SyntaxError as exc:
            result["failure"] = f"syntax error: {exc.msg} (line {exc.lineno})"
            return result, None
        except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting, surrogates
            result["failure"] = f"unparsable: {type(exc).__name__}"
            return result, None
        result["norm"] = normalize.id_of_normalized(normalized)
        result["id"] = given_id or result["norm"]
        lines = len(code.splitlines())
        if self.min_lines is not None and lines < self.min_lines:
            result["failure"] = f"too few lines ({lines} < {self.min_lines})"
        elif self.max_lines is not None and lines > self.max_lines:
            result["failure"] = f"too many lines ({lines} > {self.max_lines})"
        result["seconds"]["normalize"] = time.perf_counter() - generated_at
        if result["failure"]:
            return result, None
        return result, Prepared(code, lines, constructs, normalize.id_of_normalized(skeleton))

    def trace(self, result: dict, program: "Prepared") -> dict:
        """Run the prepared program under the tracer and build its row. In a worker this runs in the program's
        own process, forked from the template after `prepare`."""
        clock = time.perf_counter()
        code = program.code
        trace = trace_program(code, self.trace_limits)
        traced_at = time.perf_counter()
        result["seconds"]["trace"] = traced_at - clock
        if trace.failure:
            result["failure"] = trace.failure
            return result
        expected_trace = format_trace(trace.steps)
        if len(expected_trace) > self.trace_limits.max_trace_chars:
            limit = self.trace_limits.max_trace_chars
            result["failure"] = f"trace too long ({len(expected_trace)} characters > {limit})"
            return result
        result["row"] = {
            "id": result["id"],
            "code": code,
            "steps": [step.to_row() for step in trace.steps],
            "stdout": trace.stdout,
            "error": trace.error,
            "prompt": make_prompt(code),
            "expected_trace": expected_trace,
            "num_lines": program.num_lines,
            "num_steps": len(trace.steps),
            "constructs": program.constructs,
            "skeleton": program.skeleton,
        }
        result["seconds"]["row"] = time.perf_counter() - traced_at
        return result

    def run(self, payload) -> dict:
        """Both steps in this process: for trusted code only (tests, tools); workers split them."""
        result, program = self.prepare(payload)
        return result if program is None else self.trace(result, program)

    def given_id(self, payload) -> str | None:
        """The id the user gave this program (None for generated programs and lines without one)."""
        return None if self.seed is not None else payload[0]

    def forgery(self, result: dict, name: dict, payload) -> str:
        """Why a result that a program's process wrote is not that program's own, or "". `name` is the id and
        normal form its worker computed before the program ran; for a user's program the code must be the one
        the parent sent."""
        if (
            result["id"] != name["id"]
            or result["norm"] != name["norm"]
            or (self.seed is None and result["row"] is not None and result["row"]["code"] != payload[1])
        ):
            return "its process reported a result that is not its own"
        return ""

    def failed(self, result: dict | None, reason: str) -> dict:
        """The result of a program that did not finish cleanly (its worker died, or it altered the worker)."""
        result = dict(result or {"id": None, "norm": "", "seconds": {}})
        result.update(failure=result.get("failure") or reason, row=None)
        return result
