"""The one pooled HTTP client towards the upstream provider.

aiohttp's client is used on purpose: measured here, a relay through it serves an order of magnitude
more requests per second than one through httpx. Only an allow-list of headers leaves the node: the
user's key, cookies, user agent and address never reach the provider.
"""

from __future__ import annotations

import weakref
from typing import Any

import aiohttp
import orjson

from routstr.core.errors import UpstreamError
from routstr.core.uploads import UploadedFile

ANTHROPIC_VERSION = "2023-06-01"  # sent unless the client names its own
FORWARDED_HEADERS = ("accept", "openai-beta", "anthropic-version", "anthropic-beta")


class Upstream:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        session: aiohttp.ClientSession,
        connect_timeout_s: float,
        read_timeout_s: float,
        kind: str = "openai",
        total_timeout_s: float | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.kind = kind
        if kind == "anthropic":
            self._auth = {"x-api-key": api_key, "anthropic-version": ANTHROPIC_VERSION} if api_key else {}
        else:
            self._auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = aiohttp.ClientTimeout(
            total=total_timeout_s,
            connect=connect_timeout_s,
            sock_connect=connect_timeout_s,
            sock_read=read_timeout_s,
        )
        self._waiting = 0  # calls sent whose response is not handed over yet (or, get_json, not read)
        self._answers: weakref.WeakSet[aiohttp.ClientResponse] = weakref.WeakSet()  # handed over by post

    @property
    def in_flight(self) -> int:
        """Requests holding one of the session's connections: waiting for an answer, or answered and not
        yet read to the end, released or closed (a stream being relayed). Counted here, with public API
        only, because aiohttp does not tell how many of a pool's connections are in use."""
        reading = sum(1 for r in self._answers if r.connection is not None and not r.connection.closed)
        return self._waiting + reading

    def headers_for(self, incoming: Any, form: bool = False) -> dict[str, str]:
        h = {**self._auth} if form else {"Content-Type": "application/json", **self._auth}
        for name in FORWARDED_HEADERS:
            v = incoming.get(name)
            if v:
                h[name] = v
        return h

    async def post(
        self, path: str, body: dict[str, Any], incoming_headers: Any, form: bool = False
    ) -> aiohttp.ClientResponse:
        """Send a request; connection problems become ``UpstreamError`` (nothing was delivered).

        The body is re-encoded from what the node parsed and priced, never forwarded as the client's
        bytes: a JSON parser upstream could read a duplicated key ("model") differently from ours.
        """
        self._waiting += 1
        try:
            resp = await self.session.post(
                self.base_url + path,
                data=_form(body) if form else orjson.dumps(body),
                headers=self.headers_for(incoming_headers, form),
                timeout=self.timeout,
            )
        except (aiohttp.ClientError, TimeoutError) as e:
            raise UpstreamError(f"The upstream provider could not be reached: {type(e).__name__}") from None
        finally:
            self._waiting -= 1
        self._answers.add(resp)  # in flight until its connection goes back to the pool or is closed
        return resp

    async def get_json(self, path: str) -> Any:
        self._waiting += 1
        try:
            async with self.session.get(self.base_url + path, headers=self._auth, timeout=self.timeout) as r:
                r.raise_for_status()
                return orjson.loads(await r.read())
        finally:
            self._waiting -= 1


def _form(fields: dict[str, Any]) -> aiohttp.FormData:
    """Re-encode an upload (fields and files as the node parsed them) for the upstream."""
    form = aiohttp.FormData()
    for name, value in fields.items():
        if isinstance(value, UploadedFile):
            form.add_field(name, value.data, filename=value.filename, content_type=value.content_type)
        else:
            form.add_field(name, str(value))
    return form
