"""OpenAI chat completions: ``POST /v1/chat/completions``."""

from __future__ import annotations

from typing import Any

from routstr.billing.adapter import RequestFacts
from routstr.core.errors import InvalidRequest
from routstr.core.usage import Usage


def cost_object(cost_msat: int) -> dict[str, Any]:
    return {"msats": cost_msat, "sats": cost_msat / 1000}


def _text_bytes(content: Any) -> int:
    if isinstance(content, str):
        return len(content.encode())
    if isinstance(content, list):
        n = 0
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                n += len(part["text"].encode())
        return n
    return 0


def _positive_int(body: dict[str, Any], name: str) -> int | None:
    v = body.get(name)
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise InvalidRequest(f"'{name}' must be a positive integer", details={"param": name})
    return v


class ChatCompletions:
    upstream_path = "/chat/completions"

    def inspect(self, body: dict[str, Any], raw_len: int) -> RequestFacts:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("'model' is required and must be a string", details={"param": "model"})
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest("'messages' must be a non-empty array", details={"param": "messages"})
        text = 0
        for m in messages:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise InvalidRequest("each message needs a 'role'", details={"param": "messages"})
            text += _text_bytes(m.get("content"))
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise InvalidRequest("'stream' must be a boolean", details={"param": "stream"})
        mct = _positive_int(body, "max_completion_tokens")
        mt = _positive_int(body, "max_tokens")
        opts = body.get("stream_options")
        wants_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
        return RequestFacts(
            model=model,
            stream=stream,
            # every token is at least one byte of the request: its length bounds the prompt
            prompt_bound_tokens=raw_len,
            prompt_text_bytes=text,
            requested_max_output=mct or mt,
            wants_stream_usage=wants_usage,
        )

    def set_max_output(self, body: dict[str, Any], tokens: int) -> None:
        body["max_tokens"] = tokens

    def prepare_stream(self, body: dict[str, Any]) -> None:
        opts = body.get("stream_options")
        body["stream_options"] = {**(opts if isinstance(opts, dict) else {}), "include_usage": True}

    def usage(self, response: dict[str, Any]) -> Usage | None:
        return _usage(response.get("usage"))

    def may_carry_usage(self, data: bytes) -> bool:
        return b'"usage":{' in data or b'"usage": {' in data

    def event_text_bytes(self, event: dict[str, Any]) -> int:
        n = 0
        for ch in event.get("choices") or ():
            delta = ch.get("delta") if isinstance(ch, dict) else None
            if isinstance(delta, dict):
                c = delta.get("content")
                if isinstance(c, str):
                    n += len(c.encode())
                r = delta.get("reasoning_content") or delta.get("reasoning")
                if isinstance(r, str):
                    n += len(r.encode())
        return n

    def delivered_bytes(self, response: dict[str, Any]) -> int:
        n = 0
        for ch in response.get("choices") or ():
            msg = ch.get("message") if isinstance(ch, dict) else None
            if isinstance(msg, dict):
                n += _text_bytes(msg.get("content"))
        return n

    def is_usage_only_event(self, event: dict[str, Any]) -> bool:
        return not event.get("choices") and event.get("usage") is not None

    def attach_cost(self, obj: dict[str, Any], cost_msat: int) -> None:
        usage = obj.get("usage")
        if isinstance(usage, dict):
            usage["cost"] = cost_object(cost_msat)
        else:
            obj["usage"] = {"cost": cost_object(cost_msat)}


def _usage(u: Any) -> Usage | None:
    if not isinstance(u, dict):
        return None
    pt = u.get("prompt_tokens")
    ct = u.get("completion_tokens")
    if not isinstance(pt, int) or not isinstance(ct, int):
        return None
    return Usage(max(pt, 0), max(ct, 0))
