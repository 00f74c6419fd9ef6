"""Run one program under `sys.settrace` and record its steps (docs/design.md §4).

Semantics:
- A `line` event fires *before* its line runs, so a line's step is completed at the next event of the same
  frame (the next line, a return or an exception) with the frame's variables at that moment: the state
  *after* the line. Steps are emitted in completion order, so a call's steps come before the line that
  made the call.
- Values are `repr`-ed at event time (aliasing and mutation show as they were), made safe by
  `trace.encode_value`.
- Comprehension and generator-expression frames (their own frames on 3.11) are not traced: their
  result shows in the line that built them, and the trace reads the same as on 3.12+, which inlines them.
- Class bodies are not traced (their frames would read like calls); methods are, when called.
- A return that follows an exception in the same frame is the exception propagating, not a return: it
  gets no step of its own.

This module runs inside a worker process (`workers.py`); it is safe to call in-process for trusted code only.
"""

from __future__ import annotations

import builtins
import inspect
import io
import sys
import types
from dataclasses import dataclass, field

from .trace import MODULE, Step, encode_value, one_line_message, scrub_output

FILENAME = "<program>"
_UNTRACED_FRAMES = {"<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>"}
_HIDDEN_TYPES = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type)


@dataclass
class TraceLimits:
    max_steps: int = 1000
    max_value_chars: int = 160
    max_output_chars: int = 8192
    max_trace_chars: int = 100_000  # of the formatted trace: 999-character names can make one line huge


@dataclass
class TraceResult:
    steps: list[Step] = field(default_factory=list)
    stdout: str = ""
    error: str = ""  # "Type: message" of an uncaught exception
    failure: str = ""  # why the program cannot be kept ("" when it can)


class _LimitExceeded(BaseException):
    """Raised into the program when a cap is hit. A BaseException so that `except Exception` does not swallow
    it; a bare `except:` still can, so the tracer also remembers the failure itself."""


class _CappedOutput(io.TextIOBase):
    def __init__(self, tracer: "_Tracer", limit: int):
        self.tracer = tracer
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, text) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if self.size + len(text) > self.limit:
            self.tracer.fail("too much output")
        self.parts.append(text)
        self.size += len(text)
        return len(text)

    def getvalue(self) -> str:
        return "".join(self.parts)


class _Tracer:
    def __init__(self, limits: TraceLimits):
        self.limits = limits
        self.steps: list[Step] = []
        self.pending: dict[types.FrameType, int] = {}  # frame -> line whose step awaits its state
        self.depth: dict[types.FrameType, int] = {}
        self.unwinding: set[types.FrameType] = set()  # frames whose last event was an exception
        self.failure = ""
        self.stdout = _CappedOutput(self, limits.max_output_chars)
        self.printed_upto = 0
        self.encoded: dict[str, str] = {}  # repr -> encoded value: states repeat most values step after step

    def fail(self, reason: str) -> None:
        self.failure = self.failure or reason
        raise _LimitExceeded(reason)

    # -- recording ---------------------------------------------------------------------------------------
    def value(self, obj) -> str:
        try:
            text = repr(obj)
        except BaseException as exc:  # a user __repr__ may raise anything; the program must not notice
            text = f"<repr failed: {one_line_message(exc)}>"
        encoded = self.encoded.get(text)
        if encoded is None:
            encoded = self.encoded[text] = encode_value(text, self.limits.max_value_chars)
        return encoded

    def state(self, frame) -> tuple[tuple[str, str], ...]:
        return tuple(
            (name, self.value(obj))
            for name, obj in list(frame.f_locals.items())
            if name.isidentifier()
            and not (name.startswith("__") and name.endswith("__"))
            and not isinstance(obj, _HIDDEN_TYPES)
        )

    def emit(self, frame, line: int, event: str, state=(), value: str = "") -> None:
        if len(self.steps) >= self.limits.max_steps:
            self.fail("too many steps")
        printed = self.stdout.getvalue()[self.printed_upto :] if self.stdout.size > self.printed_upto else ""
        self.printed_upto = self.stdout.size
        function = frame.f_code.co_qualname if frame.f_code.co_name != MODULE else MODULE
        self.steps.append(Step(line, event, function, self.depth[frame], state, value, scrub_output(printed)))

    def finish_pending_line(self, frame) -> None:
        line = self.pending.pop(frame, None)
        if line is not None:
            self.emit(frame, line, "line", self.state(frame))

    # -- sys.settrace callbacks -----------------------------------------------------------------------------
    def on_call(self, frame, event, arg):
        code = frame.f_code
        if code.co_filename != FILENAME or code.co_name in _UNTRACED_FRAMES:
            return None
        if code.co_name != MODULE and not code.co_flags & inspect.CO_OPTIMIZED:
            return None  # a class body: its effect shows as the class's methods, which are traced when called
        parent = frame.f_back
        while parent is not None and parent not in self.depth:
            parent = parent.f_back
        self.depth[frame] = 0 if parent is None else self.depth[parent] + 1
        if code.co_name != MODULE:
            self.emit(frame, frame.f_lineno, "call", self.state(frame))
        return self.on_event

    def on_event(self, frame, event, arg):
        if event == "line":
            self.finish_pending_line(frame)
            self.unwinding.discard(frame)
            self.pending[frame] = frame.f_lineno
        elif event == "exception":
            self.finish_pending_line(frame)
            self.unwinding.add(frame)
            self.emit(frame, frame.f_lineno, "exception", value=encode_value(one_line_message(arg[1]), 10_000))
        elif event == "return":
            self.finish_pending_line(frame)
            if frame not in self.unwinding and frame.f_code.co_name != MODULE:
                self.emit(frame, frame.f_lineno, "return", value=self.value(arg))
            self.unwinding.discard(frame)
            self.depth.pop(frame, None)
        return self.on_event


def trace_program(code: str, limits: TraceLimits | None = None) -> TraceResult:
    """Execute `code` as a fresh `__main__` module and return its trace, output and outcome."""
    limits = limits or TraceLimits()
    try:
        compiled = compile(code, FILENAME, "exec")
    except (SyntaxError, ValueError) as exc:  # ValueError: source with null bytes
        return TraceResult(failure=f"syntax error: {one_line_message(exc)}")

    tracer = _Tracer(limits)
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    result = TraceResult()
    saved_streams = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = tracer.stdout
    sys.settrace(tracer.on_call)
    try:
        exec(compiled, namespace)
    except _LimitExceeded:
        pass
    except SystemExit as exc:
        result.failure = f"called sys.exit({exc.code!r})"
    except MemoryError:
        result.failure = "memory limit"
    except RecursionError:
        result.failure = "recursion limit"
    except BaseException as exc:
        result.error = one_line_message(exc)
    finally:
        still_tracing = sys.gettrace() == tracer.on_call
        sys.settrace(None)
        sys.stdout, sys.stderr = saved_streams
    result.failure = tracer.failure or result.failure
    if not result.failure and not still_tracing:
        # An exception inside the trace function (for instance a RecursionError at the stack's edge), or the
        # program itself, switched tracing off: the trace is incomplete.
        result.failure = "tracing was switched off"
    result.steps = tracer.steps
    result.stdout = scrub_output(tracer.stdout.getvalue())
    return result
