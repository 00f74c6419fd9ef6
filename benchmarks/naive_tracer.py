"""The baseline of the builder benchmark: the plainest honest tracer, in one process, with no isolation.

`sys.settrace`, the frame's variables `repr`-ed at every event (so each line's state is there at the next event,
the state after the line), stdout captured; no worker processes, no limits, no normalization, no rows. This is
what one would write in an afternoon, and what the pipeline's isolation and deduplication have to pay for.
"""

import contextlib
import io
import sys

FILENAME = "<naive>"


def naive_trace(code: str) -> list:
    steps = []

    def local(frame, event, arg):
        steps.append((event, frame.f_lineno, {k: repr(v) for k, v in frame.f_locals.items() if k[:2] != "__"}))
        return local

    def on_call(frame, event, arg):
        return local if frame.f_code.co_filename == FILENAME else None

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        sys.settrace(on_call)
        try:
            exec(compile(code, FILENAME, "exec"), {"__name__": "__main__"})
        except Exception:
            pass
        finally:
            sys.settrace(None)
    return steps
