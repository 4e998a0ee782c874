"""The relay edge: send one event to one relay over a WebSocket and wait for its verdict (NIP-01).

``["EVENT", event]`` goes out; the relay answers ``["OK", id, accepted, message]``. Anything else it
sends meanwhile (NOTICE, AUTH challenges) is skipped. The whole exchange is bounded in time and in
message size: a relay is a remote party, however trusted its operator.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

import aiohttp

MAX_MESSAGE_BYTES = 64 * 1024  # an OK or NOTICE is short; nothing larger is read
MAX_REASON_CHARS = 200


class RelayError(Exception):
    """The event was not stored; ``str()`` is safe to log (no secrets, control characters removed)."""


class RelayRejected(RelayError):
    """The relay answered ``OK false`` (a definite no: invalid, blocked, rate-limited, …)."""


class RelayUnreachable(RelayError):
    """No answer: connection refused or dropped, a timeout, or something that is not NIP-01."""


def shown(url: str) -> str:
    """A relay URL fit for logs: scheme, host, port and path only."""
    u = urlsplit(url)
    host = u.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{u.port}" if u.port else ""
    return f"{u.scheme}://{host}{port}{u.path}"


def _clean(text: object) -> str:
    s = "".join(c if c.isprintable() else " " for c in str(text))
    return s[:MAX_REASON_CHARS]


def _verdict(raw: str, event_id: str) -> tuple[bool, str] | None:
    """The relay's OK for our event, or None for any other message. A refusal naming no event id
    counts too (some relays, nostr-relay 1.14 among them, leave it empty when the event is invalid):
    one event is sent per connection, so it can only be about ours; an acceptance must name it.
    ``duplicate:`` means the relay has the event already (NIP-01), whichever boolean comes with it."""
    try:
        msg: Any = json.loads(raw)
    except ValueError:
        return None
    if not (isinstance(msg, list) and len(msg) >= 3 and msg[0] == "OK"):
        return None
    reason = _clean(msg[3]) if len(msg) > 3 else ""
    accepted = msg[2] is True or reason.startswith("duplicate:")
    if msg[1] == event_id or (msg[1] == "" and not accepted):
        return accepted, reason
    return None


async def publish(session: aiohttp.ClientSession, url: str, event: dict[str, Any], timeout_s: float) -> str:
    """Send ``event`` to the relay at ``url``; its OK message on success, else a ``RelayError``."""
    try:
        async with asyncio.timeout(timeout_s):
            async with session.ws_connect(url, max_msg_size=MAX_MESSAGE_BYTES, autoping=True) as ws:
                await ws.send_str(json.dumps(["EVENT", event], ensure_ascii=False))
                async for frame in ws:
                    if frame.type == aiohttp.WSMsgType.ERROR:
                        break
                    if frame.type != aiohttp.WSMsgType.TEXT:
                        continue
                    verdict = _verdict(frame.data, event["id"])
                    if verdict is None:
                        continue
                    accepted, reason = verdict
                    if not accepted:
                        raise RelayRejected(f"refused by the relay: {reason or 'no reason given'}")
                    return reason
                raise RelayUnreachable("the relay closed the connection without answering the event")
    except TimeoutError:
        raise RelayUnreachable(f"no answer within {timeout_s:g} s") from None
    except (aiohttp.ClientError, OSError) as e:
        raise RelayUnreachable(f"cannot reach the relay: {_clean(type(e).__name__)}: {_clean(e)}") from None
