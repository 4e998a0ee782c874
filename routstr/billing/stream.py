"""Metering a streamed (SSE) answer while passing it on as it arrives.

Events go out untouched; only the few that can carry usage or end the stream are parsed (found by
byte searches the upstream's dialect names: ``UpstreamSide.may_carry_usage`` and ``end_markers``), so
the cost per chunk is a few ``in``. The text delivered is counted only if it is needed, i.e. when no
usage arrives (a cut stream) and the documented estimate applies, or once the events not yet counted
pass ``UNCOUNTED_LIMIT``: the meter keeps counts and a bounded window, so a long stream's memory stays
flat.
"""

from __future__ import annotations

from typing import Any

import orjson

from routstr.core.usage import Usage
from routstr.dialects.sides import UpstreamSide

UNCOUNTED_LIMIT = 64 * 1024  # bytes of forwarded events kept before their text is counted and they go


class SseMeter:
    """Meters one stream in the upstream's dialect (its usage, its end event, its text)."""

    def __init__(self, upstream: UpstreamSide, hold_finish: bool = False) -> None:
        self.upstream = upstream
        self.end_markers = upstream.end_markers
        # hold the last event that ends a choice until the next event (or the end), so that the usage
        # can ride on it for a client that did not ask for the usage-only event
        self.hold_finish = hold_finish
        self.finish_event: bytes | None = None  # the held event (whole, with its prefix lines)
        self.usage: Usage | None = None
        self.usage_event: dict[str, Any] | None = None  # held back, sent last with the cost in it
        self.usage_event_prefix = b""  # its lines before ``data:`` (e.g. ``event: response.completed``)
        self.done = False  # the stream's end event arrived
        self.final = False  # the usage-only event arrived: ``usage`` is complete, not a lower bound
        self.end_event = b""  # the stream's last event (when ``done``), sent after the usage
        self._buf = b""
        self._uncounted: list[bytes] = []  # forwarded events whose text is not counted yet
        self._uncounted_bytes = 0
        self._counted = 0  # bytes of text in the forwarded events already counted

    def feed(self, chunk: bytes) -> bytes:
        """Take a chunk from the upstream; return what to send to the client now."""
        upstream = self.upstream
        if (
            not self._buf
            and chunk.endswith(b"\n\n")
            and b"\r" not in chunk
            and not upstream.may_carry_usage(chunk)
            and not (self.hold_finish and (self.finish_event or upstream.may_end_a_choice(chunk)))
        ):
            for marker in self.end_markers:
                if marker in chunk:
                    break
            else:
                self._keep(chunk)  # whole events, none with usage nor the end: pass on as they are
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
                if upstream.is_end_event(payload):
                    self.done = True
                    self.end_event = ev + b"\n\n"
                    continue
                if upstream.may_carry_usage(payload) and self._take_usage(payload):
                    self.usage_event_prefix = prefix
                    continue
                if self.hold_finish and upstream.may_end_a_choice(payload):
                    self._release_finish(out)
                    self.finish_event = ev + b"\n\n"
                    continue
            self._release_finish(out)
            out.append(ev + b"\n\n")
        sent = b"".join(out)
        if sent:
            self._keep(sent)
        return sent

    def _keep(self, events: bytes) -> None:
        self._uncounted.append(events)
        self._uncounted_bytes += len(events)
        if self._uncounted_bytes > UNCOUNTED_LIMIT:
            self._counted += sum(self._text_bytes(block) for block in self._uncounted)
            self._uncounted.clear()
            self._uncounted_bytes = 0

    def _release_finish(self, out: list[bytes]) -> None:
        """An event follows the held one: it is not the last, so it goes out as it came."""
        if self.finish_event is not None:
            out.append(self.finish_event)
            self.finish_event = None

    def take_finish(self) -> bytes:
        """The held finish event, for the closing events (b"" if none)."""
        ev, self.finish_event = self.finish_event or b"", None
        return ev

    def _take_usage(self, data: bytes) -> bool:
        """Record the usage in ``data``; True if the event is usage only (held back)."""
        obj = _json_object(data)
        if obj is None:
            return False
        u = self.upstream.usage(obj)
        if u is None:
            return False
        self.usage = self.upstream.merge_usage(self.usage, u)
        if self.upstream.is_usage_only_event(obj):
            self.usage_event = obj
            self.final = True
            return True
        return False

    def delivered_bytes(self) -> int:
        """Bytes of text the client was sent (only for the estimate). A held finish event counts: it
        goes out with the closing events."""
        held = [self.finish_event] if self.finish_event is not None else []
        return self._counted + sum(self._text_bytes(block) for block in self._uncounted + held)

    def _text_bytes(self, block: bytes) -> int:
        """Bytes of text in whole forwarded events (parses them)."""
        n = 0
        for ev in block.split(b"\n\n"):
            _, payload = _split_event(ev)
            obj = _json_object(payload) if payload is not None else None
            if obj is not None:
                n += self.upstream.event_text_bytes(obj)
        return n


def with_usage(event: bytes, usage_event: dict[str, Any] | None) -> tuple[bytes, dict[str, Any]] | None:
    """A held finish event, parsed, with the usage of the usage-only event put on it (the upstream's
    own usage on it, if any, is kept when there is none): its prefix lines and data; None when it
    does not parse as a JSON object (then it goes out as it came)."""
    prefix, payload = _split_event(event.rstrip(b"\n"))
    obj = _json_object(payload) if payload is not None else None
    if obj is None:
        return None
    if usage_event is not None and isinstance(usage_event.get("usage"), dict):
        obj["usage"] = usage_event["usage"]
    return prefix, obj


def _json_object(payload: bytes) -> dict[str, Any] | None:
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def _split_event(ev: bytes) -> tuple[bytes, bytes | None]:
    """An SSE event's lines before its ``data:`` line, and the data (None for events without)."""
    if ev.startswith(b"data:"):
        return b"", ev[5:].strip()
    i = ev.find(b"\ndata:")
    if i < 0:
        return ev, None
    return ev[: i + 1], ev[i + 6 :].strip()
