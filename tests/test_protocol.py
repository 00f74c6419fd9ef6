"""The parent's side of the worker channel: whatever bytes a worker sends, the parent gets a checked result or
a ProtocolError, never a crash and never code run (no pickle)."""

import json
import pickle
import struct

import pytest

from dataset_builder.protocol import FrameReader, ProtocolError, check_result, decode_result, encode_frame
from dataset_builder.rows import ProgramJob


def good_result() -> dict:
    return ProgramJob().run([None, "x = [1, 2]\nprint(x)"])


def test_a_real_result_passes_and_survives_the_frame():
    result = good_result()
    body = json.dumps(result, ensure_ascii=False).encode()
    frames = FrameReader().feed(encode_frame({"kind": "result", "index": 3}, body))
    assert frames == [({"kind": "result", "index": 3}, body)]
    assert decode_result(frames[0][1]) == result


def test_frames_split_anywhere_are_put_back_together():
    data = encode_frame({"kind": "ready"}) + encode_frame({"kind": "result", "index": 0}, b"xyz")
    reader = FrameReader()
    frames = [f for i in range(len(data)) for f in reader.feed(data[i : i + 1])]
    assert frames == [({"kind": "ready"}, b""), ({"kind": "result", "index": 0}, b"xyz")]


class Boom:
    def __reduce__(self):
        return (print, ("this would run in the parent",))


@pytest.mark.parametrize(
    "body",
    [
        pickle.dumps(5),
        pickle.dumps(Boom()),
        b"\x80\x05garbage",
        b"",
        b"[]",
        b"null",
        b"\xed\xa0\x80",
        b'{"id": "a", "norm": "", "failure": "", "row": null, "seconds": {}}',  # neither row nor failure
        json.dumps({"id": "\udcff", "norm": "", "failure": "x", "row": None, "seconds": {}}).encode(),
        b"[" * 100_000,
    ],
)
def test_garbage_results_are_protocol_errors(body):
    with pytest.raises(ProtocolError):
        decode_result(body)


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda r: r["row"].pop("steps"),
        lambda r: r["row"].update(extra=1),
        lambda r: r["row"].update(num_steps=99),
        lambda r: r["row"]["steps"][0].update(line="1"),
        lambda r: r["row"]["steps"][0].update(line=True),
        lambda r: r["row"]["steps"][0].update(event="teleport"),
        lambda r: r["row"]["steps"][0]["state"].append({"name": "x"}),
        lambda r: r["row"]["steps"][0]["state"].append({"name": "x", "value": 5}),
        lambda r: r["row"].update(stdout="\udcff"),
        lambda r: r["row"].update(id="someone else"),
        lambda r: r.update(failure="timeout"),
        lambda r: r.update(seconds={"x": "slow"}),
        lambda r: r.update(seconds={"x": 10**400}),
    ],
)
def test_results_with_a_wrong_shape_are_protocol_errors(corrupt):
    result = good_result()
    corrupt(result)
    with pytest.raises(ProtocolError):
        check_result(result)


def test_oversized_or_kindless_frames_are_refused_before_reading_them():
    with pytest.raises(ProtocolError, match="oversized"):
        FrameReader().feed(struct.pack("!II", 10, 1 << 31))
    with pytest.raises(ProtocolError):
        FrameReader().feed(encode_frame({"no": "kind"}))
    with pytest.raises(ProtocolError):
        FrameReader().feed(struct.pack("!II", 4, 0) + b"\xff\xfe{}")


def test_a_result_at_every_cap_fits_the_frame_limit_and_one_past_a_cap_does_not_pass():
    """The frame limit comes from the caps: the largest well-formed result (every text at its cap, in characters
    JSON must escape) is accepted, and the same result one step, or one character of trace, further is not."""
    from dataset_builder.protocol import ERROR_CHARS, max_result_bytes, output_chars, value_chars
    from dataset_builder.rows import MAX_CODE_CHARS
    from dataset_builder.tracer import TraceLimits

    limits = TraceLimits()
    result = good_result()
    row = result["row"]
    code = "\x01" * MAX_CODE_CHARS  # 6 bytes each in JSON
    per_step = limits.max_trace_chars // limits.max_steps  # characters of trace text per step, all in one value
    step = {
        "line": 1,
        "event": "line",
        "function": "<module>",
        "depth": 0,
        "value": "",
        "output": "",
        "state": [{"name": "x", "value": "\x01" * (per_step - 2)}],
    }
    row.update(
        code=code,
        prompt=[{"role": "user", "content": code}],
        num_lines=1,
        stdout="\x01" * output_chars(limits),
        error="\x01" * ERROR_CHARS,
        expected_trace="\x01" * limits.max_trace_chars,
        steps=[step] * limits.max_steps,
        num_steps=limits.max_steps,
    )
    assert per_step - 2 <= value_chars(limits)
    assert len(json.dumps(result, ensure_ascii=False).encode()) <= max_result_bytes(limits)
    assert check_result(json.loads(json.dumps(result)), limits)["row"]["num_steps"] == limits.max_steps

    one_more = dict(row, steps=[step] * (limits.max_steps + 1), num_steps=limits.max_steps + 1)
    with pytest.raises(ProtocolError, match="more steps than the cap"):
        check_result(dict(result, row=one_more), limits)
    wider = dict(step, state=[{"name": "x", "value": "\x01" * (per_step - 1)}])
    with pytest.raises(ProtocolError, match="trace longer than the cap"):
        check_result(dict(result, row=dict(row, steps=[wider] * limits.max_steps)), limits)
