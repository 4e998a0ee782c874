"""The two sides of each dialect, chosen by (client dialect, provider kind), and the stream meter
asking the upstream's side (not its own list) where the usage is and how the stream ends."""

from __future__ import annotations

import orjson

from routstr.api.llm import ROUTES
from routstr.billing.adapter import TABLE, adapter_for
from routstr.billing.stream import SseMeter
from routstr.core.usage import Usage
from routstr.dialects import anthropic, openai_chat, openai_responses
from routstr.dialects.anthropic_chat import TO_CHAT


def test_the_table_chooses_the_upstream_side_and_translation_by_provider_kind() -> None:
    native = adapter_for(anthropic.CLIENT, "anthropic")
    assert native is not None and native.upstream is anthropic.UPSTREAM and native.translation is None
    translated = adapter_for(anthropic.CLIENT, "openai")
    assert translated is not None and translated.upstream is openai_chat.CHAT_UPSTREAM
    assert translated.translation is TO_CHAT and translated.to_upstream({"model": "m", "messages": []}) == {
        "model": "m", "messages": [], "max_tokens": None,
    }  # fmt: skip
    chat = adapter_for(openai_chat.CHAT_CLIENT, "openai")
    assert chat is not None and chat.stream_translator("m") is None
    body: dict[str, object] = {}
    assert chat.to_upstream(body) is body and chat.from_upstream(body, None) is body
    assert adapter_for(openai_chat.CHAT_CLIENT, "anthropic") is None  # an Anthropic provider has no chat
    assert adapter_for(openai_responses.CLIENT, "anthropic") is None
    # every route can be served by an OpenAI-type provider, and every entry's client is a route's
    assert all(adapter_for(client, "openai") is not None for client in ROUTES.values())
    assert {a.client for a in TABLE.values()} == set(ROUTES.values())


def _ev(kind: str, **data: object) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


START = _ev("message_start", message={"id": "msg_1", "usage": {"input_tokens": 12, "output_tokens": 1,
                                                              "cache_read_input_tokens": 30}})  # fmt: skip
CONTENT = [
    _ev("content_block_start", index=0, content_block={"type": "text", "text": ""}),
    # text that looks like the other dialects' markers is just text here
    _ev("content_block_delta", index=0, delta={"type": "text_delta", "text": 'say "[DONE]", "usage":{'}),
    _ev("content_block_stop", index=0),
]
DELTA = _ev("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 7})
STOP = _ev("message_stop")
STREAM = START + b"".join(CONTENT) + DELTA + STOP


def test_an_anthropic_stream_is_metered_in_its_own_dialect_wherever_the_chunks_are_cut() -> None:
    for cut in range(len(STREAM) + 1):
        m = SseMeter(anthropic.UPSTREAM)
        out = m.feed(STREAM[:cut]) + m.feed(STREAM[cut:])
        assert out == START + b"".join(CONTENT), cut  # message_delta held for the cost, then the end
        assert m.done and m.final and m.end_event == STOP
        assert m.usage == Usage(42, 7, cached_tokens=30)  # input from message_start, output from the delta
        assert m.usage_event_prefix == b"event: message_delta\n"
        assert m.delivered_bytes() == len(b'say "[DONE]", "usage":{')


def test_message_stop_in_a_chat_stream_is_text_and_done_ends_it() -> None:
    chunk = b'data: {"choices":[{"index":0,"delta":{"content":"message_stop"}}]}\n\n'
    m = SseMeter(openai_chat.CHAT_UPSTREAM)
    assert m.feed(chunk) == chunk and not m.done
    assert m.feed(b"data: [DONE]\n\n") == b"" and m.done and m.end_event == b"data: [DONE]\n\n"
