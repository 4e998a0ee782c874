"""The stream meter passes events through unchanged, wherever the upstream's chunks are cut."""

from __future__ import annotations

import orjson

from routstr.billing.adapters.chat import ChatCompletions
from routstr.billing.stream import SseMeter
from routstr.core.usage import Usage


def _event(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


CONTENT = [
    _event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}], "usage": None}),
    _event({"choices": [{"index": 0, "delta": {"content": "Héllo "}}], "usage": None}),
    _event({"choices": [{"index": 0, "delta": {"content": "world"}}], "usage": None}),
    b": keep-alive comment\n\n",
    _event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None}),
]
USAGE = _event({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 3}})
STREAM = b"".join(CONTENT) + USAGE + b"data: [DONE]\n\n"


def test_every_split_point_gives_the_same_events_and_usage():
    for cut in range(len(STREAM) + 1):
        for crlf in (False, True):
            raw = STREAM.replace(b"\n", b"\r\n") if crlf else STREAM
            m = SseMeter(ChatCompletions())
            out = m.feed(raw[:cut]) + m.feed(raw[cut:])
            assert out == b"".join(CONTENT), (cut, crlf)
            assert m.usage == Usage(11, 3) and m.done
            assert m.usage_event is not None and m.usage_event["usage"]["prompt_tokens"] == 11


def test_a_cut_stream_counts_the_text_it_delivered():
    m = SseMeter(ChatCompletions())
    m.feed(CONTENT[0] + CONTENT[1] + CONTENT[2][:20])
    assert m.usage is None and not m.done
    assert m.delivered_bytes() == len("Héllo ".encode())


def test_text_that_looks_like_markers_is_just_text():
    tricky = [
        _event(
            {"choices": [{"index": 0, "delta": {"content": 'say "[DONE]" and "usage":{'}}], "usage": None}
        ),
        _event({"choices": [{"index": 0, "delta": {"content": "more"}}], "usage": None}),
    ]
    m = SseMeter(ChatCompletions())
    out = m.feed(b"".join(tricky)) + m.feed(USAGE + b"data: [DONE]\n\n")
    assert out == b"".join(tricky)
    assert m.done and m.usage == Usage(11, 3)
    assert m.delivered_bytes() == len(b'say "[DONE]" and "usage":{') + len(b"more")
