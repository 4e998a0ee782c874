"""Metering a streamed (SSE) answer while passing it on as it arrives.

Events go out untouched; only the few that can carry usage are parsed (a byte search finds them),
so the cost per chunk is a split and a ``in``. The text delivered is counted only if it is needed,
i.e. when no usage arrives (a cut stream) and the documented estimate applies.
"""

from __future__ import annotations

from typing import Any

import orjson

from routstr.billing.adapter import EndpointAdapter
from routstr.core.usage import Usage

DONE = b"data: [DONE]\n\n"


class SseMeter:
    def __init__(self, adapter: EndpointAdapter) -> None:
        self.adapter = adapter
        self.usage: Usage | None = None
        self.usage_event: dict[str, Any] | None = None  # held back, sent last with the cost in it
        self.usage_event_prefix = b""  # its lines before ``data:`` (e.g. ``event: response.completed``)
        self.done = False  # the stream's end event arrived
        self.final = False  # the usage-only event arrived: ``usage`` is complete, not a lower bound
        self.end_event = DONE  # the stream's last event, sent after the usage
        self._buf = b""
        self._sent: list[bytes] = []

    def feed(self, chunk: bytes) -> bytes:
        """Take a chunk from the upstream; return what to send to the client now."""
        if (
            not self._buf
            and chunk.endswith(b"\n\n")
            and b"\r" not in chunk
            and b"[DONE]" not in chunk
            and b"message_stop" not in chunk
            and not self.adapter.may_carry_usage(chunk)
        ):
            self._sent.append(chunk)  # whole events, none with usage: pass on as they are (the common case)
            return chunk
        data = self._buf + chunk
        if b"\r" in data:  # CRLF line ends (a CR may end one chunk and its LF start the next)
            data = data.replace(b"\r\n", b"\n")
        events = data.split(b"\n\n")
        self._buf = events.pop()  # an incomplete event waits for the next chunk
        out: list[bytes] = []
        for ev in events:
            if not ev:
                continue
            prefix, payload = _split_event(ev)
            if payload is not None:
                if self.adapter.is_end_event(payload):
                    self.done = True
                    self.end_event = ev + b"\n\n"
                    continue
                if self.adapter.may_carry_usage(payload) and self._take_usage(payload):
                    self.usage_event_prefix = prefix
                    continue
            out.append(ev + b"\n\n")
        self._sent.extend(out)
        return b"".join(out)

    def _take_usage(self, data: bytes) -> bool:
        """Record the usage in ``data``; True if the event is usage only (held back)."""
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return False
        if not isinstance(obj, dict):
            return False
        u = self.adapter.usage(obj)
        if u is None:
            return False
        self.usage = self.adapter.merge_usage(self.usage, u)
        if self.adapter.is_usage_only_event(obj):
            self.usage_event = obj
            self.final = True
            return True
        return False

    def delivered_bytes(self) -> int:
        """Bytes of text the client was sent (parses the forwarded events; only for the estimate)."""
        n = 0
        for block in self._sent:
            for ev in block.split(b"\n\n"):
                _, payload = _split_event(ev)
                if payload is None:
                    continue
                try:
                    obj = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(obj, dict):
                    n += self.adapter.event_text_bytes(obj)
        return n


def _split_event(ev: bytes) -> tuple[bytes, bytes | None]:
    """An SSE event's lines before its ``data:`` line, and the data (None for events without)."""
    if ev.startswith(b"data:"):
        return b"", ev[5:].strip()
    i = ev.find(b"\ndata:")
    if i < 0:
        return ev, None
    return ev[: i + 1], ev[i + 6 :].strip()
