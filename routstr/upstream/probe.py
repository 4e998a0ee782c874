"""Testing a model at a provider: one tiny completion (one output token), sent straight to it.

For the operator ("does this provider serve this model with this key?"): nothing is billed, and the
provider's circuit breaker is left alone. The provider's key never appears in the answer, even when
its error message quotes it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any

from routstr.core.errors import UpstreamError
from routstr.upstream.client import Upstream
from routstr.upstream.errors import upstream_error

PROBE_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    status: int | None  # the provider's HTTP status; None when it could not be reached
    latency_ms: float
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe_request(kind: str, model: str) -> tuple[str, dict[str, Any]]:
    """The path and body of the smallest chat request a provider of ``kind`` takes."""
    messages = [{"role": "user", "content": "Say OK."}]
    if kind == "anthropic":
        return "/messages", {"model": model, "max_tokens": 1, "messages": messages}
    return "/chat/completions", {"model": model, "max_tokens": 1, "messages": messages}


async def probe(
    client: Upstream, model: str, api_key: str, timeout_s: float = PROBE_TIMEOUT_S
) -> ProbeResult:
    path, body = probe_request(client.kind, model)
    started = time.perf_counter()

    def elapsed() -> float:
        return round((time.perf_counter() - started) * 1000, 1)

    try:
        async with asyncio.timeout(timeout_s):
            resp = await client.post(path, body, {})
            try:
                raw = await resp.read()
            finally:
                resp.release()
    except UpstreamError as e:
        return ProbeResult(False, None, elapsed(), _scrub(e.message, api_key))
    except TimeoutError:
        return ProbeResult(False, None, elapsed(), f"no answer within {timeout_s:.0f} s")
    except Exception as e:  # an answer cut short, a closed client: the test failed, say how
        return ProbeResult(False, None, elapsed(), type(e).__name__)
    if resp.status < 400:
        return ProbeResult(True, resp.status, elapsed(), None)
    message = upstream_error(resp.status, raw, None).message
    return ProbeResult(False, resp.status, elapsed(), _scrub(message, api_key))


def _scrub(message: str, api_key: str) -> str:
    return message.replace(api_key, "[provider key]") if api_key else message
