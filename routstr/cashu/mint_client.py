"""HTTP client for one Cashu mint: the only module of `routstr.cashu` that does I/O.

It runs over an injected `aiohttp.ClientSession` (connection pooling is the caller's business) and caches
what does not change: a keyset id's keys never change, and the keyset list and mint info are kept until
`refresh()`. So receiving a payment costs exactly one round trip (the swap) once the client is warm.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson

from .errors import CashuProtocolError, MintError, MintUnavailable
from .nut00 import BlindedMessage, BlindedSignature, Proof
from .nut01 import Keyset, parse_keys_response
from .nut02 import KeysetInfo, parse_keysets_response, verify_keyset_id
from .nut03 import PostSwapRequest, PostSwapResponse
from .nut07 import PostCheckStateRequest, PostCheckStateResponse
from .nut09 import PostRestoreRequest, PostRestoreResponse

# Nutshell rejects requests with more than `mint_max_request_length` (default 1000) entries
CHECKSTATE_BATCH = 1000
_JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class MintClient:
    """Async NUT-01/02/03/06/07/09 client of the mint at `url`."""

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        timeout_s: float = 15.0,
        verify_keyset_ids: bool = True,
    ) -> None:
        self.url = url.strip().rstrip("/")
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._verify_ids = verify_keyset_ids
        self._info: dict[str, Any] | None = None
        self._keysets: list[KeysetInfo] | None = None
        self._active_key_ids: list[str] | None = None
        self._keys: dict[str, Keyset] = {}
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"MintClient({self.url!r})"

    # ----------------------------------------------------------------------------------------- HTTP

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One JSON request; maps every failure to MintError (definite) or MintUnavailable (unknown)."""
        url = self.url + path
        data = orjson.dumps(body) if body is not None else None
        try:
            async with self._session.request(
                method, url, data=data, headers=_JSON_HEADERS, timeout=self._timeout, raise_for_status=False
            ) as resp:
                status = resp.status
                raw = await resp.read()
        except (aiohttp.ClientConnectorError, aiohttp.InvalidURL) as e:
            raise MintUnavailable(f"{method} {url}: cannot connect: {e}", maybe_processed=False) from e
        except (aiohttp.ClientError, TimeoutError) as e:
            what = "timeout" if isinstance(e, TimeoutError) else type(e).__name__
            raise MintUnavailable(f"{method} {url}: {what}: {e}", maybe_processed=method != "GET") from e
        try:
            parsed: Any = orjson.loads(raw)
            is_json = True
        except orjson.JSONDecodeError:
            parsed, is_json = None, False
        if 200 <= status < 300:
            if not is_json:
                raise MintUnavailable(f"{method} {url}: non-JSON response", status=status)
            return parsed
        is_error_body = is_json and isinstance(parsed, dict) and ("detail" in parsed or "code" in parsed)
        if status == 429 or status >= 500 or status < 400 or not is_error_body:
            snippet = raw[:200].decode("utf-8", "replace")
            raise MintUnavailable(
                f"{method} {url}: HTTP {status}: {snippet}",
                status=status,
                maybe_processed=status >= 500 and method != "GET",
            )
        raise MintError.from_body(parsed, status)

    async def _get(self, path: str) -> Any:
        return await self._request("GET", path)

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        return await self._request("POST", path, body)

    # ----------------------------------------------------------------------------------------- info & keys

    async def info(self) -> dict[str, Any]:
        """NUT-06 mint info (cached until `refresh()`)."""
        if self._info is None:
            body = await self._get("/v1/info")
            if not isinstance(body, dict):
                raise CashuProtocolError("mint info must be a JSON object")
            self._info = body
        return self._info

    async def keysets(self) -> list[KeysetInfo]:
        """All keysets, active and inactive (GET /v1/keysets), cached until `refresh()`."""
        if self._keysets is None:
            async with self._lock:
                if self._keysets is None:
                    body = await self._get("/v1/keysets")
                    try:
                        self._keysets = parse_keysets_response(body)
                    except ValueError as e:
                        raise CashuProtocolError(f"bad keysets response: {e}") from None
        return list(self._keysets)

    async def refresh(self) -> list[KeysetInfo]:
        """Forget the keyset list, the active keys and the info (e.g. after a rotation) and refetch."""
        self._keysets = None
        self._active_key_ids = None
        self._info = None
        return await self.keysets()

    def _store_keysets(self, keysets: list[Keyset]) -> None:
        for ks in keysets:
            if self._verify_ids and not verify_keyset_id(ks):
                raise CashuProtocolError(f"keyset id {ks.id} does not match its keys")
            self._keys[ks.id] = ks

    async def _fetch_keys(self, path: str) -> list[Keyset]:
        body = await self._get(path)
        try:
            keysets = parse_keys_response(body)
        except ValueError as e:
            raise CashuProtocolError(f"bad keys response: {e}") from None
        self._store_keysets(keysets)
        return keysets

    async def keys(self, keyset_id: str | None = None) -> list[Keyset]:
        """Keys of one keyset (GET /v1/keys/{id}) or of all active keysets (GET /v1/keys). Cached."""
        if keyset_id is not None:
            if keyset_id not in self._keys:
                keysets = await self._fetch_keys(f"/v1/keys/{keyset_id}")
                if keyset_id not in self._keys:
                    got = [k.id for k in keysets]
                    raise CashuProtocolError(f"asked for keyset {keyset_id}, mint returned {got}")
            return [self._keys[keyset_id]]
        if self._active_key_ids is None:
            self._active_key_ids = [k.id for k in await self._fetch_keys("/v1/keys")]
        return [self._keys[i] for i in self._active_key_ids]

    async def keyset(self, keyset_id: str) -> Keyset:
        """Keys of one keyset (cached forever: a keyset's keys never change)."""
        return (await self.keys(keyset_id))[0]

    async def active_keyset(self, unit: str = "sat") -> Keyset:
        """The active keyset of `unit` to sign new outputs with; the cheapest if there are several."""
        candidates = [k for k in await self.keysets() if k.active and k.unit == unit]
        if not candidates:
            raise CashuProtocolError(f"mint has no active keyset for unit {unit!r}")
        best = min(candidates, key=lambda k: k.input_fee_ppk)
        return await self.keyset(best.id)

    async def fee_ppk_by_keyset(self) -> dict[str, int]:
        """`input_fee_ppk` for every keyset id, as `nut02.fee_for` wants it."""
        return {k.id: k.input_fee_ppk for k in await self.keysets()}

    async def keyset_ids(self) -> list[str]:
        """All full keyset ids, for `tokens.resolve_short_keyset_ids`."""
        return [k.id for k in await self.keysets()]

    # ----------------------------------------------------------------------------------------- operations

    async def swap(
        self, inputs: Sequence[Proof], outputs: Sequence[BlindedMessage]
    ) -> list[BlindedSignature]:
        """NUT-03 swap. Inputs are sent without DLEQ. The signatures come back in output order."""
        body = PostSwapRequest(inputs=list(inputs), outputs=list(outputs)).to_dict()
        resp = await self._post("/v1/swap", body)
        try:
            sigs = PostSwapResponse.from_dict(resp).signatures
        except ValueError as e:
            raise CashuProtocolError(f"bad swap response: {e}") from None
        if len(sigs) != len(outputs):
            raise CashuProtocolError(f"mint returned {len(sigs)} signatures for {len(outputs)} outputs")
        return sigs

    async def check_state(self, Ys: Sequence[str]) -> dict[str, str]:
        """NUT-07: map each Y (hex) to "UNSPENT" | "PENDING" | "SPENT" (batched by CHECKSTATE_BATCH)."""
        result: dict[str, str] = {}
        for start in range(0, len(Ys), CHECKSTATE_BATCH):
            batch = list(Ys[start : start + CHECKSTATE_BATCH])
            resp = await self._post("/v1/checkstate", PostCheckStateRequest(Ys=batch).to_dict())
            try:
                states = PostCheckStateResponse.from_dict(resp).states
            except ValueError as e:
                raise CashuProtocolError(f"bad checkstate response: {e}") from None
            result.update((s.Y, str(s.state)) for s in states)
        missing = [y for y in Ys if y not in result]
        if missing:
            raise CashuProtocolError(f"mint returned no state for {len(missing)} of {len(Ys)} Ys")
        return result

    async def restore(
        self, outputs: Sequence[BlindedMessage]
    ) -> list[tuple[BlindedMessage, BlindedSignature]]:
        """NUT-09: the signatures the mint already issued for any of `outputs` (others are omitted)."""
        if not outputs:
            return []
        resp = await self._post("/v1/restore", PostRestoreRequest(outputs=list(outputs)).to_dict())
        try:
            parsed = PostRestoreResponse.from_dict(resp)
        except ValueError as e:
            raise CashuProtocolError(f"bad restore response: {e}") from None
        asked = {o.B_ for o in outputs}
        if any(o.B_ not in asked for o in parsed.outputs):
            raise CashuProtocolError("restore returned an output that was not asked for")
        return list(zip(parsed.outputs, parsed.signatures, strict=True))
