"""One program from source to dataset row; this is what a worker process runs for each program.

Generating, normalizing and tracing all happen in the workers, in parallel: the parent only deduplicates
(in position order, so the result does not depend on which worker finished first) and writes rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from . import generator, normalize
from .trace import format_trace, make_prompt
from .tracer import TraceLimits, trace_program


@dataclass
class ProgramJob:
    """What every worker needs to know: programs come as stream positions of `seed` (generated) or as
    `(id, code)` pairs (a user's file)."""

    trace_limits: TraceLimits = field(default_factory=TraceLimits)
    seed: int | None = None
    min_lines: int | None = None
    max_lines: int | None = None

    @classmethod
    def from_config(cls, config: dict) -> "ProgramJob":
        """The job as the parent sent it (`dataclasses.asdict`: workers get data, never pickles)."""
        return cls(**{**config, "trace_limits": TraceLimits(**config["trace_limits"])})

    def run(self, payload) -> dict:
        timings = {}
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[stage] = now - clock
            clock = now

        if self.seed is not None:
            program = generator.program_at(self.seed, payload)
            given_id, code, constructs = None, program.code, list(program.constructs)
        else:
            (given_id, code), constructs = payload, []
        lap("generate")
        result = {"id": given_id, "norm": "", "failure": "", "row": None, "seconds": timings}
        try:
            normalized, skeleton = normalize.forms(code)
        except SyntaxError as exc:
            result["failure"] = f"syntax error: {exc.msg} (line {exc.lineno})"
            return result
        except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
            result["failure"] = f"unparsable: {type(exc).__name__}"
            return result
        result["norm"] = normalize.id_of_normalized(normalized)
        result["id"] = given_id or result["norm"]
        lines = len(code.splitlines())
        if self.min_lines is not None and lines < self.min_lines:
            result["failure"] = f"too few lines ({lines} < {self.min_lines})"
        elif self.max_lines is not None and lines > self.max_lines:
            result["failure"] = f"too many lines ({lines} > {self.max_lines})"
        lap("normalize")
        if result["failure"]:
            return result
        trace = trace_program(code, self.trace_limits)
        lap("trace")
        if trace.failure:
            result["failure"] = trace.failure
            return result
        result["row"] = {
            "id": result["id"],
            "code": code,
            "steps": [step.to_row() for step in trace.steps],
            "stdout": trace.stdout,
            "error": trace.error,
            "prompt": make_prompt(code),
            "expected_trace": format_trace(trace.steps),
            "num_lines": lines,
            "num_steps": len(trace.steps),
            "constructs": constructs,
            "skeleton": normalize.id_of_normalized(skeleton),
        }
        lap("row")
        return result

    def failed(self, result: dict | None, reason: str) -> dict:
        """The result of a program that did not finish cleanly (its worker died, or it altered the worker)."""
        result = dict(result or {"id": None, "norm": "", "seconds": {}})
        result.update(failure=result.get("failure") or reason, row=None)
        return result
