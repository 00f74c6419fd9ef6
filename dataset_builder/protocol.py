"""The channel between the build and its workers: data only, every message checked.

A worker runs hostile code, so the parent treats what comes from it as untrusted bytes: no pickle (unpickling
runs code), frames of bounded size, JSON decoded strictly as UTF-8, and every result checked field by field
against the row the dataset stores (`check_result`). Anything else is a `ProtocolError`, which rejects the
program that worker was on and replaces the worker; it never reaches the dataset or crashes the build.

A frame is `!II` (header length, body length), a JSON header, then a body of raw bytes (a program's result,
as its traced process wrote it; the worker does not parse it).
"""

from __future__ import annotations

import json
import struct

from .trace import EVENTS

MAX_HEADER_BYTES = 64 << 10
MAX_BODY_BYTES = 64 << 20  # far above any row the trace caps allow
_PREFIX = struct.Struct("!II")


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
    """The parent's side: feed it whatever bytes arrived (never blocks), take out complete frames."""

    def __init__(self):
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[dict, bytes]]:
        self.buffer += data
        frames = []
        while len(self.buffer) >= _PREFIX.size:
            header_size, body_size = _PREFIX.unpack_from(self.buffer)
            if header_size > MAX_HEADER_BYTES or body_size > MAX_BODY_BYTES:
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


def _decode(data: bytes):
    try:
        return json.loads(data.decode("utf-8"))  # strict UTF-8: no encoded surrogates
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"not JSON ({type(exc).__name__})") from None


# ---------------------------------------------------------------------------------------------------------
# What a result may hold


def _text(value, what: str, limit: int = MAX_BODY_BYTES) -> str:
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
_ROW_KEYS = frozenset({"id", "code", "steps", "stdout", "error", "prompt", "expected_trace", "num_lines",
                       "num_steps", "constructs", "skeleton"})
_STEP_KEYS = frozenset({"line", "event", "function", "depth", "state", "value", "output"})
_PAIR_KEYS = frozenset({"name", "value"})
_MESSAGE_KEYS = frozenset({"role", "content"})


def check_result(result) -> dict:
    """`result` if it is a well-formed program result (see `rows.ProgramJob.run`), else ProtocolError."""
    _exact_keys(result, _RESULT_KEYS, "the result")
    if result["id"] is not None:
        _text(result["id"], "id", 100_000)
    _text(result["norm"], "norm", 128)
    _text(result["failure"], "failure", 10_000)
    seconds = result["seconds"]
    if not isinstance(seconds, dict) or len(seconds) > 16 or not all(
        isinstance(k, str) and type(v) in (int, float) for k, v in seconds.items()
    ):
        raise ProtocolError("seconds is not a small map of numbers")
    if result["row"] is not None:
        if result["failure"]:
            raise ProtocolError("a failed program with a row")
        _check_row(result["row"])
        if result["row"]["id"] != result["id"]:
            raise ProtocolError("the row's id differs from the result's")
    elif not result["failure"]:
        raise ProtocolError("neither a row nor a failure")
    return result


def _check_row(row) -> None:
    _exact_keys(row, _ROW_KEYS, "the row")
    for name in ("id", "code", "stdout", "error", "expected_trace", "skeleton"):
        _text(row[name], name)
    _integer(row["num_lines"], "num_lines")
    steps = _list(row["steps"], "steps")
    if _integer(row["num_steps"], "num_steps") != len(steps):
        raise ProtocolError("num_steps differs from the steps")
    for step in steps:
        _exact_keys(step, _STEP_KEYS, "a step")
        _integer(step["line"], "a step's line")
        _integer(step["depth"], "a step's depth")
        if step["event"] not in EVENTS:
            raise ProtocolError("a step's event is unknown")
        for name in ("function", "value", "output"):
            _text(step[name], f"a step's {name}")
        for pair in _list(step["state"], "a step's state"):
            _exact_keys(pair, _PAIR_KEYS, "a state entry")
            _text(pair["name"], "a variable name", 1000)
            _text(pair["value"], "a value")
    for message in _list(row["prompt"], "prompt"):
        _exact_keys(message, _MESSAGE_KEYS, "a prompt message")
        _text(message["role"], "a prompt role", 100)
        _text(message["content"], "a prompt message")
    for kind in _list(row["constructs"], "constructs"):
        _text(kind, "a construct", 100)


def check_name(header: dict) -> dict:
    """The id and normal form a worker's template sent with a result, checked: {"id": str | None, "norm": str}."""
    program_id, norm = header.get("id"), header.get("norm")
    if program_id is not None:
        _text(program_id, "id", 100_000)
    return {"id": program_id, "norm": _text(norm, "norm", 128)}


def decode_result(body: bytes) -> dict:
    return check_result(_decode(body))
