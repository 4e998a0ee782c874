"""Reading the node's answers as a client does: SSE events, the output bytes received in every dialect
(text, reasoning, tool-call arguments; 4 bytes are one token of the fake provider), costs and errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson


def sse_events(raw: bytes) -> list[dict[str, Any]]:
    """The JSON events of an SSE body (``[DONE]`` and unparsable data left out)."""
    out = []
    for ev in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        for line in ev.split(b"\n"):
            if line.startswith(b"data:") and line[5:].strip() not in (b"[DONE]", b""):
                try:
                    obj = orjson.loads(line[5:].strip())
                except orjson.JSONDecodeError:
                    continue
                if isinstance(obj, dict):
                    out.append(obj)
    return out


def _s(v: Any) -> int:
    return len(v.encode()) if isinstance(v, str) else 0


def event_output_bytes(e: dict[str, Any]) -> int:
    """Output bytes one stream event delivers: text, reasoning, tool-call arguments, in every dialect."""
    kind = e.get("type")
    if kind == "content_block_delta":  # Anthropic
        d = e.get("delta") or {}
        return _s(d.get("text")) + _s(d.get("partial_json")) + _s(d.get("thinking"))
    if isinstance(kind, str) and kind.startswith("response.") and kind.endswith(".delta"):
        return _s(e.get("delta"))  # output_text, function_call_arguments, reasoning
    n = 0
    for c in e.get("choices") or ():
        n += _s(c.get("text"))  # legacy completions
        d = c.get("delta") or {}
        n += _s(d.get("content")) + _s(d.get("reasoning_content") or d.get("reasoning"))
        for tc in d.get("tool_calls") or ():
            n += _s((tc.get("function") or {}).get("arguments"))
    return n


def answer_output_bytes(obj: dict[str, Any]) -> int:
    """Output bytes of a complete (non-streamed) answer, in every dialect."""
    n = 0
    for c in obj.get("choices") or ():
        n += _s(c.get("text"))
        m = c.get("message") or {}
        n += _s(m.get("content")) + _s(m.get("reasoning_content") or m.get("reasoning"))
        for tc in m.get("tool_calls") or ():
            n += _s((tc.get("function") or {}).get("arguments"))
    if obj.get("type") == "message":  # Anthropic
        for b in obj.get("content") or ():
            n += _s(b.get("text")) + _s(b.get("thinking"))
            if b.get("type") == "tool_use":
                n += len(orjson.dumps(b.get("input")))
    for item in obj.get("output") or () if obj.get("object") == "response" else ():
        n += _s(item.get("arguments"))
        for part in item.get("content") or ():
            n += _s(part.get("text"))
    return n


def error_code(body: Any) -> str | None:
    """The ``code`` of an error envelope (OpenAI's, or Anthropic's where it has no code: its type)."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return None
    code = err.get("code") or err.get("type")
    return str(code) if code is not None else None


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    raw: bytes
    events: list[dict[str, Any]] = field(default_factory=list)
    left_early: bool = False  # the client closed the connection before the end

    @property
    def json(self) -> Any:
        return orjson.loads(self.raw)

    @property
    def output_bytes(self) -> int:
        if self.events or self.headers.get("Content-Type", "").startswith("text/event-stream"):
            return sum(event_output_bytes(e) for e in self.events)
        return answer_output_bytes(self.json) if self.status == 200 else 0

    @property
    def output_tokens(self) -> int:
        return self.output_bytes // 4

    @property
    def cost_msat(self) -> int | None:
        """``usage.cost.msats`` wherever this dialect puts it (None if the answer showed none)."""
        if not self.events and self.status == 200 and self.raw.startswith(b"{"):
            cost = ((self.json.get("usage") or {}).get("cost") or {}).get("msats")
            return int(cost) if cost is not None else None
        for e in reversed(self.events):
            holder = e.get("response") if isinstance(e.get("response"), dict) else e
            cost = ((holder.get("usage") or {}).get("cost") or {}).get("msats")
            if cost is not None:
                return int(cost)
        return None

    def describe(self) -> str:
        return f"HTTP {self.status}: {self.raw[:300]!r}"
