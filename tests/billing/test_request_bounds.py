"""What the adapters say a request can cost before it runs: every generation it asks for, every image
it sends, and the refusals for what cannot be priced in advance (issue 13, attacks 2, 4, 5, 6)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from routstr.core.errors import InvalidRequest
from routstr.dialects import anthropic, openai_chat, openai_responses

CHAT, LEGACY = openai_chat.CHAT_CLIENT, openai_chat.COMPLETIONS_CLIENT
RESP, MSG = openai_responses.CLIENT, anthropic.CLIENT


def _facts(adapter: Any, body: dict[str, Any]) -> Any:
    return adapter.inspect(body, len(orjson.dumps(body)))


def _code(adapter: Any, body: dict[str, Any]) -> str:
    with pytest.raises(InvalidRequest) as e:
        _facts(adapter, body)
    return e.value.code


def test_chat_n_multiplies_the_outputs() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "n": 50, "max_tokens": 1000}
    assert _facts(CHAT, body).outputs == 50
    assert _facts(CHAT, {**body, "n": None}).outputs == 1
    for bad in (0, 129, True, "2"):
        assert _code(CHAT, {**body, "n": bad}) == "invalid_request"


def test_legacy_completions_count_prompts_times_best_of() -> None:
    body = {"model": "m", "prompt": ["a"] * 100, "best_of": 2, "max_tokens": 10}
    assert _facts(LEGACY, body).outputs == 200
    assert _facts(LEGACY, {**body, "n": 3, "best_of": 5}).outputs == 500
    assert _facts(LEGACY, {"model": "m", "prompt": [1, 2, 3]}).outputs == 1  # one prompt of token ids
    assert _facts(LEGACY, {"model": "m", "prompt": [[1, 2], [3]]}).outputs == 2
    assert _code(LEGACY, {**body, "n": 3, "best_of": 2}) == "invalid_request"  # best_of < n


def test_tool_definitions_and_calls_count_as_prompt_text() -> None:
    hi = [{"role": "user", "content": "hi"}]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"x": "y" * 999}}}]
    plain = _facts(CHAT, {"model": "m", "messages": hi})
    with_tools = _facts(CHAT, {"model": "m", "messages": hi, "tools": tools})
    assert with_tools.prompt_text_bytes - plain.prompt_text_bytes == len(orjson.dumps(tools))
    fn = {"name": "f", "arguments": "a" * 400}
    call = {"role": "assistant", "tool_calls": [{"type": "function", "function": fn}]}
    replayed = _facts(CHAT, {"model": "m", "messages": [*hi, call]})
    assert replayed.prompt_text_bytes >= plain.prompt_text_bytes + 400
    system = {"model": "m", "max_tokens": 5, "system": "s" * 300, "messages": hi}
    assert _facts(MSG, system).prompt_text_bytes >= 302


def test_images_are_counted_whatever_their_bytes() -> None:
    part = {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
    chat = {"model": "m", "messages": [{"role": "user", "content": [part] * 100}]}
    assert _facts(CHAT, chat).images == 100
    parts = [{"type": "input_image", "image_url": "u"}] * 7
    resp = {"model": "m", "input": [{"role": "user", "content": parts}]}
    assert _facts(RESP, resp).images == 7
    image = {"type": "image", "source": {"type": "url", "url": "u"}}
    msg = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [image, image]}]}
    assert _facts(MSG, msg).images == 2


@pytest.mark.parametrize(
    ("adapter", "extra"),
    [
        (RESP, {"previous_response_id": "resp_1"}),
        (RESP, {"conversation": "conv_1"}),
        (RESP, {"prompt": {"id": "pmpt_1"}}),
        (RESP, {"input": [{"type": "item_reference", "id": "msg_1"}]}),
        (RESP, {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]}),
        (CHAT, {"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}]}),
        (MSG, {"messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "url"}}]}]}),
    ],
)
def test_content_by_reference_is_refused(adapter: Any, extra: dict[str, Any]) -> None:
    base = {"model": "m", "input": "hi", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    assert _code(adapter, {**base, **extra}) == "unbounded_input"


@pytest.mark.parametrize(
    ("adapter", "extra"),
    [
        (CHAT, {"service_tier": "priority"}),
        (CHAT, {"web_search_options": {}}),
        (CHAT, {"modalities": ["text", "audio"], "audio": {"voice": "alloy"}}),
        (CHAT, {"tools": [{"type": "web_search"}]}),
        (LEGACY, {"service_tier": "priority"}),
        (RESP, {"tools": [{"type": "web_search"}]}),
        (RESP, {"tools": [{"type": "file_search"}]}),
        (RESP, {"background": True}),
        (RESP, {"service_tier": "scale"}),
        (MSG, {"tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
        (MSG, {"mcp_servers": [{"type": "url", "url": "https://x"}]}),
    ],
)
def test_unpriced_extras_are_refused(adapter: Any, extra: dict[str, Any]) -> None:
    base: dict[str, Any] = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    base.update({"input": "hi"} if adapter is RESP else {"prompt": "hi"} if adapter is LEGACY else {})
    assert _code(adapter, {**base, **extra}) == "unpriced_feature"


def test_standard_tiers_and_client_tools_pass() -> None:
    hi = [{"role": "user", "content": "hi"}]
    tools = [{"type": "function", "name": "f", "parameters": {}}, {"type": "custom", "name": "c"}]
    assert _facts(RESP, {"model": "m", "input": "hi", "service_tier": "flex", "tools": tools}).outputs == 1
    assert _facts(CHAT, {"model": "m", "messages": hi, "service_tier": "auto"}).outputs == 1
    bash = {"type": "bash_20250124", "name": "bash"}
    assert _facts(MSG, {"model": "m", "max_tokens": 5, "messages": hi, "tools": [bash]}).images == 0


def test_delivered_bytes_count_tool_calls_reasoning_and_thinking() -> None:
    chunk = {"choices": [{"delta": {"tool_calls": [{"function": {"name": "get", "arguments": "a" * 40}}],
                                    "reasoning_content": "r" * 10}}]}  # fmt: skip
    assert openai_chat.CHAT_UPSTREAM.event_text_bytes(chunk) == 3 + 40 + 10
    resp = openai_responses.UPSTREAM
    assert resp.event_text_bytes({"type": "response.function_call_arguments.delta", "delta": "x" * 9}) == 9
    assert resp.event_text_bytes({"type": "response.reasoning_summary_text.delta", "delta": "y" * 4}) == 4
    native = anthropic.UPSTREAM
    delta = {"type": "content_block_delta", "delta": {"type": "input_json_delta", "partial_json": "z" * 7}}
    assert native.event_text_bytes(delta) == 7
    block = {"type": "tool_use", "name": "bash", "input": {}}
    start = {"type": "content_block_start", "content_block": block}
    assert native.event_text_bytes(start) == 4
    thinking = {"type": "content_block_delta", "delta": {"type": "thinking_delta", "thinking": "t" * 5}}
    assert native.event_text_bytes(thinking) == 5


def _held(**facts: Any) -> Any:
    from routstr.billing.relay import Held
    from routstr.core.pricing import ModelPrice
    from routstr.dialects.sides import RequestFacts
    from routstr.metrics.trace import Trace

    f = RequestFacts(model="m", stream=True, prompt_bound_tokens=10_000, prompt_text_bytes=4_000,
                     requested_max_output=100, wants_stream_usage=False, **facts)  # fmt: skip
    return Held(1, "ref", "rid", 10**9, ModelPrice(1000, 3000), f, Trace())


def test_the_estimate_counts_images_and_stays_within_the_reservation() -> None:
    from routstr.billing.relay import estimate

    held = _held(images=2)
    held.image_tokens, held.max_output_tokens = 2 * 4096, 300
    u = estimate(held, delivered_bytes=400)
    assert (u.prompt_tokens, u.completion_tokens) == (min(1000 + 8192, 10_000), 100)
    assert estimate(held, delivered_bytes=10**6).completion_tokens == 300  # never beyond the cap


def test_a_partial_usage_is_a_lower_bound_never_the_answer() -> None:
    from routstr.billing.relay import estimate
    from routstr.core.usage import Usage

    held = _held()
    held.max_output_tokens = 5000
    # Anthropic's message_start: the input is exact, the output says 1 token
    u = estimate(held, delivered_bytes=15_800, partial=Usage(1234, 1, cached_tokens=34))
    assert (u.prompt_tokens, u.completion_tokens, u.cached_tokens) == (1234, 3950, 34)
    assert estimate(held, delivered_bytes=4, partial=Usage(1234, 99)).completion_tokens == 99


def test_sat_tokens_are_charged_rounded_up() -> None:
    from routstr.core.money import whole_unit_charge

    assert whole_unit_charge(1903, 1000) == 2000
    assert whole_unit_charge(2000, 1000) == 2000
    assert whole_unit_charge(1, 1000) == 1000
    assert whole_unit_charge(0, 1000) == 0
    assert whole_unit_charge(1903, 1) == 1903


def test_a_model_id_with_control_characters_is_refused() -> None:
    """PostgreSQL refuses NUL in text: such an id must be a 400 before it reaches the ledger (a 500 on
    main when a stored provider has no model list)."""
    hi = [{"role": "user", "content": "hi"}]
    for bad in ("a\u0000b", "a\nb", "x" * 257):
        assert _code(CHAT, {"model": bad, "messages": hi}) == "invalid_request"
    assert _facts(CHAT, {"model": "anthropic/claude-sonnet-4.5:beta", "messages": hi}).model


def test_a_reservation_no_balance_can_hold_is_a_400_not_a_database_error() -> None:
    from routstr.billing.pipeline import MAX_RESERVATION_MSAT, Pipeline
    from routstr.core.pricing import ModelPrice

    body = {"model": "m", "prompt": [""] * 1000, "best_of": 20, "max_tokens": 2**31 - 1}
    facts = _facts(LEGACY, body)
    price = ModelPrice(10**6, 10**12)  # a billion sats per million output tokens
    with pytest.raises(InvalidRequest) as e:
        Pipeline._amount(price, facts, 2**31 - 1, None)
    assert e.value.code == "request_too_large" and e.value.details["required"] > MAX_RESERVATION_MSAT
    assert Pipeline._amount(price, facts, 1, None) < MAX_RESERVATION_MSAT
