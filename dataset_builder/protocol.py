"""The channel between the build and its workers: data only, every message checked.

A worker runs hostile code, so the parent treats what comes from it as untrusted bytes: no pickle (unpickling
runs code), frames of bounded size, JSON decoded strictly as UTF-8 (no NaN or infinities), and every result
checked field by field against the row the dataset stores and against the build's own caps (`check_result`).
A program runs in the process that writes its result, so it can rewrite that result: it may lie about its own
trace, but not past the caps (steps, value, output, error and trace sizes, construct names, finite numbers), and
a message can be no larger than the largest result the caps allow (`max_result_bytes`), so the parent's memory
does not depend on what a program writes. Anything else is a `ProtocolError`, which rejects the program that
worker was on and replaces the worker; it never reaches the dataset or crashes the build.

A frame is `!II` (header length, body length), a JSON header, then a body of raw bytes (a program's result,
as its traced process wrote it; the worker does not parse it).
"""

from __future__ import annotations

import json
import math
import re
import struct

from .generator import CONSTRUCT_KINDS
from .rows import MAX_CODE_CHARS
from .trace import EVENTS, MAX_MESSAGE_CHARS, MODULE
from .tracer import TraceLimits

MAX_HEADER_BYTES = 64 << 10
_PREFIX = struct.Struct("!II")
_HASH = re.compile(r"[0-9a-f]{16}")  # `normalize.id_of_normalized`


def value_chars(limits: TraceLimits) -> int:
    """A bound on one stored value: a repr cut at `max_value_chars`, inside the truncation marker, written as a
    string literal (up to 10 characters per character) with trace tags escaped."""
    return 12 * limits.max_value_chars + 64


def output_chars(limits: TraceLimits) -> int:
    """A bound on printed output: the tracer stops a program at `max_output_chars`; escaping can lengthen it."""
    return 2 * limits.max_output_chars + 64


ERROR_CHARS = MAX_CODE_CHARS + 4 * MAX_MESSAGE_CHARS  # "Type: message": a class name from the code, a cut message


def max_result_bytes(limits: TraceLimits) -> int:
    """The largest result, as JSON, that a row within `limits` can take: each character escaped (6 bytes), the
    code twice (code, prompt), the trace twice (steps, text), plus the JSON of every step and state entry (a
    state entry takes at least 3 characters of the trace). A worker's message above this is refused unread."""
    characters = 2 * MAX_CODE_CHARS + 2 * limits.max_trace_chars + 2 * output_chars(limits) + ERROR_CHARS
    return 6 * characters + 200 * limits.max_steps + 40 * (limits.max_trace_chars // 3) + (64 << 10)


class ProtocolError(Exception):
    """A malformed message; its text says what was wrong (it ends up in report.json)."""


def encode_frame(header: dict, body: bytes = b"") -> bytes:
    data = json.dumps(header).encode()  # ASCII: any lone surrogate in a payload travels as an escape
    return _PREFIX.pack(len(data), len(body)) + data + body


def send_frame(sock, header: dict, body: bytes = b"") -> None:
    sock.sendall(encode_frame(header, body))


def receive_frame(sock) -> tuple[dict, bytes] | None:
    """Blocking read of one frame (the worker side: it trusts the parent). None at end of stream."""
    prefix = _read_exactly(sock, _PREFIX.size)
    if prefix is None:
        return None
    header_size, body_size = _PREFIX.unpack(prefix)
    return json.loads(_read_exactly(sock, header_size) or b"{}"), _read_exactly(sock, body_size) or b""


def _read_exactly(sock, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class FrameReader:
    """The parent's side: feed it whatever bytes arrived (never blocks), take out complete frames of at most
    `max_body` bytes of body."""

    def __init__(self, max_body: int = max_result_bytes(TraceLimits())):
        self.buffer = bytearray()
        self.max_body = max_body

    def feed(self, data: bytes) -> list[tuple[dict, bytes]]:
        self.buffer += data
        frames = []
        while len(self.buffer) >= _PREFIX.size:
            header_size, body_size = _PREFIX.unpack_from(self.buffer)
            if header_size > MAX_HEADER_BYTES or body_size > self.max_body:
                raise ProtocolError(f"oversized message ({header_size} + {body_size} bytes)")
            end = _PREFIX.size + header_size + body_size
            if len(self.buffer) < end:
                break
            header = _decode(bytes(self.buffer[_PREFIX.size : _PREFIX.size + header_size]))
            if not isinstance(header, dict) or not isinstance(header.get("kind"), str):
                raise ProtocolError("a message without a kind")
            frames.append((header, bytes(self.buffer[_PREFIX.size + header_size : end])))
            del self.buffer[:end]
        return frames


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _decode(data: bytes):
    try:  # strict UTF-8 (no encoded surrogates), no NaN or Infinity
        return json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"not JSON ({type(exc).__name__})") from None


# ---------------------------------------------------------------------------------------------------------
# What a result may hold


def _text(value, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise ProtocolError(f"{what} is not a string")
    if len(value) > limit:
        raise ProtocolError(f"{what} is too long")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ProtocolError(f"{what} holds a lone surrogate") from None
    return value


def _integer(value, what: str, low: int = 0, high: int = 2**31 - 1) -> int:
    if type(value) is not int or not low <= value <= high:
        raise ProtocolError(f"{what} is not an integer in [{low}, {high}]")
    return value


def _list(value, what: str) -> list:
    if not isinstance(value, list):
        raise ProtocolError(f"{what} is not a list")
    return value


def _exact_keys(value, keys: frozenset, what: str) -> dict:
    if not isinstance(value, dict) or value.keys() != keys:
        raise ProtocolError(f"{what} does not have exactly the fields {sorted(keys)}")
    return value


_RESULT_KEYS = frozenset({"id", "norm", "failure", "row", "seconds"})
_ROW_KEYS = frozenset(
    {
        "id",
        "code",
        "steps",
        "stdout",
        "error",
        "prompt",
        "expected_trace",
        "num_lines",
        "num_steps",
        "constructs",
        "skeleton",
    }
)
_STEP_KEYS = frozenset({"line", "event", "function", "depth", "state", "value", "output"})
_PAIR_KEYS = frozenset({"name", "value"})
_MESSAGE_KEYS = frozenset({"role", "content"})


def check_result(result, limits: TraceLimits = TraceLimits()) -> dict:
    """`result` if it is a well-formed program result (see `rows.ProgramJob.run`) within `limits`, else
    ProtocolError. Its `num_lines` is derived from its code here (not taken from the worker)."""
    _exact_keys(result, _RESULT_KEYS, "the result")
    if result["id"] is not None:
        _text(result["id"], "id", 100_000)
    _text(result["norm"], "norm", 128)
    _text(result["failure"], "failure", 10_000)
    seconds = result["seconds"]
    if (
        not isinstance(seconds, dict)
        or len(seconds) > 16
        or not all(
            isinstance(k, str)
            and len(k) < 100
            and (
                type(v) is float and math.isfinite(v) or type(v) is int and abs(v) < 2**53
            )  # a huge int would not even convert to a float
            for k, v in seconds.items()
        )
    ):
        raise ProtocolError("seconds is not a small map of finite numbers")
    if result["row"] is not None:
        if result["failure"]:
            raise ProtocolError("a failed program with a row")
        _check_row(result["row"], limits)
        if result["row"]["id"] != result["id"]:
            raise ProtocolError("the row's id differs from the result's")
    elif not result["failure"]:
        raise ProtocolError("neither a row nor a failure")
    return result


def _check_row(row, limits: TraceLimits) -> None:
    _exact_keys(row, _ROW_KEYS, "the row")
    _text(row["id"], "id", 100_000)
    code = _text(row["code"], "code", MAX_CODE_CHARS)
    _text(row["stdout"], "stdout", output_chars(limits))
    _text(row["error"], "error", ERROR_CHARS)
    _text(row["expected_trace"], "expected_trace", limits.max_trace_chars)
    if not _HASH.fullmatch(_text(row["skeleton"], "skeleton", 16)):
        raise ProtocolError("skeleton is not a structure hash")
    _integer(row["num_lines"], "num_lines")
    row["num_lines"] = len(code.splitlines())  # derived, not believed
    steps = _list(row["steps"], "steps")
    if _integer(row["num_steps"], "num_steps") != len(steps):
        raise ProtocolError("num_steps differs from the steps")
    if len(steps) > limits.max_steps:
        raise ProtocolError(f"more steps than the cap ({len(steps)} > {limits.max_steps})")
    value_limit, text = value_chars(limits), 0  # `text`: characters the full trace format would show
    for step in steps:
        _exact_keys(step, _STEP_KEYS, "a step")
        _integer(step["line"], "a step's line", high=row["num_lines"] + 1)
        _integer(step["depth"], "a step's depth", high=limits.max_steps)
        if step["event"] not in EVENTS:
            raise ProtocolError("a step's event is unknown")
        function = _text(step["function"], "a step's function", 1000)
        text += len(_text(step["value"], "a step's value", max(value_limit, ERROR_CHARS)))
        text += len(_text(step["output"], "a step's output", output_chars(limits)))
        text += 0 if function == MODULE else len(function)
        for pair in _list(step["state"], "a step's state"):
            _exact_keys(pair, _PAIR_KEYS, "a state entry")
            name, value = _text(pair["name"], "a variable name", 1000), _text(pair["value"], "a value", value_limit)
            if not name or not value:
                raise ProtocolError("a state entry without a name or a value")
            text += len(name) + len(value) + 1
        if text > limits.max_trace_chars:
            raise ProtocolError(f"a trace longer than the cap ({limits.max_trace_chars} characters)")
    for message in _list(row["prompt"], "prompt"):
        _exact_keys(message, _MESSAGE_KEYS, "a prompt message")
        _text(message["role"], "a prompt role", 100)
        _text(message["content"], "a prompt message", MAX_CODE_CHARS + 10_000)
    constructs = _list(row["constructs"], "constructs")
    if not all(isinstance(kind, str) and kind in CONSTRUCT_KINDS for kind in constructs) or (
        len(set(constructs)) != len(constructs)
    ):
        raise ProtocolError("constructs are not distinct names from the builder's list")


def check_name(header: dict) -> dict:
    """The id and normal form a worker's template sent with a result, checked: {"id": str | None, "norm": str}."""
    program_id, norm = header.get("id"), header.get("norm")
    if program_id is not None:
        _text(program_id, "id", 100_000)
    return {"id": program_id, "norm": _text(norm, "norm", 128)}


def decode_result(body: bytes, limits: TraceLimits = TraceLimits()) -> dict:
    return check_result(_decode(body), limits)
