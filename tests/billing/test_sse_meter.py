"""The stream meter passes events through unchanged, wherever the upstream's chunks are cut."""

from __future__ import annotations

import tracemalloc

import orjson

from routstr.billing.stream import UNCOUNTED_LIMIT, SseMeter, with_usage
from routstr.core.usage import Usage
from routstr.dialects.openai_chat import CHAT_UPSTREAM


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
            m = SseMeter(CHAT_UPSTREAM)
            out = m.feed(raw[:cut]) + m.feed(raw[cut:])
            assert out == b"".join(CONTENT), (cut, crlf)
            assert m.usage == Usage(11, 3) and m.done
            assert m.usage_event is not None and m.usage_event["usage"]["prompt_tokens"] == 11


def test_a_cut_stream_counts_the_text_it_delivered():
    m = SseMeter(CHAT_UPSTREAM)
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
    m = SseMeter(CHAT_UPSTREAM)
    out = m.feed(b"".join(tricky)) + m.feed(USAGE + b"data: [DONE]\n\n")
    assert out == b"".join(tricky)
    assert m.done and m.usage == Usage(11, 3)
    assert m.delivered_bytes() == len(b'say "[DONE]" and "usage":{') + len(b"more")


def test_the_last_finish_event_is_held_for_the_usage_wherever_the_chunks_are_cut():
    """A client that did not ask for the usage-only event gets the usage on the last finish event:
    the meter holds it until the next event shows it is not the last, or until the end."""
    for cut in range(len(STREAM) + 1):
        for crlf in (False, True):
            raw = STREAM.replace(b"\n", b"\r\n") if crlf else STREAM
            m = SseMeter(CHAT_UPSTREAM, hold_finish=True)
            out = m.feed(raw[:cut]) + m.feed(raw[cut:])
            assert out == b"".join(CONTENT[:-1]), (cut, crlf)
            assert m.take_finish() == CONTENT[-1] and m.take_finish() == b""
            assert m.usage == Usage(11, 3) and m.done


def test_a_finish_event_followed_by_more_goes_out_in_order():
    """``n`` > 1: each choice ends with its own finish event; only the last one is held."""
    first_done = _event({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}], "usage": None})
    second = _event({"choices": [{"index": 1, "delta": {"content": "late"}}], "usage": None})
    last_done = _event({"choices": [{"index": 1, "delta": {}, "finish_reason": "stop"}], "usage": None})
    m = SseMeter(CHAT_UPSTREAM, hold_finish=True)
    out = m.feed(CONTENT[1] + first_done) + m.feed(second + last_done) + m.feed(USAGE + b"data: [DONE]\n\n")
    assert out == CONTENT[1] + first_done + second
    assert m.delivered_bytes() == len("Héllo ".encode()) + len(b"late")
    assert m.take_finish() == last_done


def test_a_held_finish_event_with_text_counts_as_delivered():
    """Some upstreams send the last text with the finish_reason: it goes out at the end, and a cut
    stream's estimate counts it."""
    final_text = _event({"choices": [{"index": 0, "delta": {"content": "bye"}, "finish_reason": "stop"}]})
    m = SseMeter(CHAT_UPSTREAM, hold_finish=True)
    assert m.feed(CONTENT[1] + final_text) == CONTENT[1]
    assert m.usage is None and m.delivered_bytes() == len("Héllo ".encode()) + len(b"bye")


def test_with_usage_puts_the_usage_only_events_usage_on_the_finish_event():
    usage_event = orjson.loads(USAGE[6:])
    prefix, obj = with_usage(b"event: x\n" + CONTENT[-1], usage_event) or (b"", {})
    assert prefix == b"event: x\n" and obj["choices"][0]["finish_reason"] == "stop"
    assert obj["usage"] == {"prompt_tokens": 11, "completion_tokens": 3}
    own = _event(
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 2}}
    )
    assert (with_usage(own, None) or (b"", {}))[1]["usage"] == {"prompt_tokens": 2}  # the upstream's own kept
    assert with_usage(b"data: not json\n\n", usage_event) is None


def test_a_100k_token_stream_keeps_the_meters_memory_flat():
    """The meter keeps counts, not the stream: its memory after 100,000 token events is what it was
    after 10,000, and the text it counts for a cut stream's estimate is still all of it."""
    token = _event({"choices": [{"index": 0, "delta": {"content": "tok "}}], "usage": None})
    m = SseMeter(CHAT_UPSTREAM)
    tracemalloc.start()
    try:
        for _ in range(10_000):
            m.feed(token)
        early, _ = tracemalloc.get_traced_memory()
        for _ in range(90_000):
            m.feed(token)
        late, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert late - early < UNCOUNTED_LIMIT + 16 * 1024, (early, late)  # 100k events are ~6 MB
    assert m.delivered_bytes() == 100_000 * len(b"tok ")
