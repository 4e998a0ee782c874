"""HTTP client for one Cashu mint: the only module of `routstr.cashu` that does I/O.

It runs over an injected `aiohttp.ClientSession` (connection pooling is the caller's business) and caches
what does not change: a keyset id's keys never change, and the keyset list and mint info are kept until
`refresh()`. So receiving a payment costs exactly one round trip (the swap) once the client is warm.

Lightning (NUT-04/05/08/23, bolt11 only): mint quotes and minting, melt quotes and melting. Calls that
issue or spend value (`swap`, `mint`, `melt`) may have been processed when their answer is lost
(`MintUnavailable.maybe_processed`): recover with NUT-09 restore or the quote's state, never by assuming.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote as url_quote

import aiohttp
import orjson

from .errors import CashuProtocolError, MintError, MintOutcomeUnknown, MintUnavailable, is_swap_refusal
from .nut00 import BlindedMessage, BlindedSignature, Proof
from .nut01 import Keyset, parse_keys_response
from .nut02 import KeysetInfo, cheapest_active, fee_table, parse_keysets_response, verify_keyset_id
from .nut03 import PostSwapRequest, PostSwapResponse
from .nut04 import (
    BOLT11,
    MintQuote,
    PostMintBolt11Request,
    PostMintBolt11Response,
    PostMintQuoteBolt11Request,
)
from .nut05 import MeltQuote, PostMeltBolt11Request, PostMeltQuoteBolt11Request
from .nut07 import PostCheckStateRequest, PostCheckStateResponse
from .nut09 import PostRestoreRequest, PostRestoreResponse

# Nutshell rejects requests with more than `mint_max_request_length` (default 1000) entries
CHECKSTATE_BATCH = 1000
# A melt blocks until the Lightning payment settles or fails (NUT-05: use a very long timeout); a timeout
# does not cancel the payment, it only loses the answer (poll `melt_quote_state` then).
MELT_TIMEOUT_S = 300.0
_JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class MintClient:
    """Async NUT-01/02/03/04/05/06/07/08/09/23 client of the mint at `url`."""

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

    async def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        client_timeout: aiohttp.ClientTimeout | None = None,
    ) -> Any:
        """One JSON request; maps every failure to MintError (definite) or MintUnavailable (unknown)."""
        url = self.url + path
        data = orjson.dumps(body) if body is not None else None
        try:
            async with self._session.request(
                method,
                url,
                data=data,
                headers=_JSON_HEADERS,
                timeout=client_timeout if client_timeout is not None else self._timeout,
                raise_for_status=False,
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

    async def _post(
        self, path: str, body: dict[str, Any], client_timeout: aiohttp.ClientTimeout | None = None
    ) -> Any:
        return await self._request("POST", path, body, client_timeout)

    async def _post_value(
        self,
        path: str,
        body: dict[str, Any],
        client_timeout: aiohttp.ClientTimeout | None = None,
        refused: Callable[[MintError], bool] | None = None,
    ) -> Any:
        """POST an operation that issues or spends value (swap, mint, melt).

        Only an error that ``refused`` calls a definite refusal stays a MintError. Any other error answer
        may hide an operation the mint carried out: it becomes MintOutcomeUnknown. The default (mint,
        melt): every coded error is definite except Nutshell's code 0, an unexpected exception that may
        strike after the payment went out or the outputs were signed; 422 (body validation) is definite.
        """
        try:
            return await self._post(path, body, client_timeout)
        except MintError as e:
            definite = refused(e) if refused is not None else e.code not in (None, 0) or e.status == 422
            if definite:
                raise
            raise MintOutcomeUnknown(
                f"POST {self.url + path}: error {e.code}, may have been processed: {e.detail}",
                detail=e.detail,
                code=e.code,
                status=e.status,
            ) from e

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
        """The keyset of `unit` to make new outputs for, by `nut02.cheapest_active`'s rule."""
        best = cheapest_active(await self.keysets(), unit)
        if best is None:
            raise CashuProtocolError(f"mint has no active keyset for unit {unit!r}")
        return await self.keyset(best.id)

    async def fee_ppk_by_keyset(self) -> dict[str, int]:
        """`input_fee_ppk` for every keyset id, as `nut02.fee_for` wants it."""
        return fee_table(await self.keysets())

    async def keyset_ids(self) -> list[str]:
        """All full keyset ids, for `tokens.resolve_short_keyset_ids`."""
        return [k.id for k in await self.keysets()]

    # ----------------------------------------------------------------------------------------- operations

    async def swap(
        self, inputs: Sequence[Proof], outputs: Sequence[BlindedMessage]
    ) -> list[BlindedSignature]:
        """NUT-03 swap. Inputs are sent without DLEQ. The signatures come back in output order.

        A MintError is a definite refusal (``errors.is_swap_refusal``): the inputs were not spent by it.
        Any other error answer (Nutshell's code 0) is MintOutcomeUnknown: the swap may have committed.
        """
        body = PostSwapRequest(inputs=list(inputs), outputs=list(outputs)).to_dict()
        resp = await self._post_value("/v1/swap", body, refused=lambda e: is_swap_refusal(e.code, e.status))
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

    # ----------------------------------------------------------------------------------------- lightning

    def _quote_path(self, kind: str, quote_id: str) -> str:
        if not quote_id:
            raise ValueError("quote id must not be empty")
        return f"/v1/{kind}/quote/{BOLT11}/{url_quote(quote_id, safe='')}"

    async def mint_quote(self, amount: int, unit: str = "sat", description: str | None = None) -> MintQuote:
        """NUT-23: a bolt11 invoice which, once paid, lets `mint` issue `amount` of `unit`.

        Keep the quote id secret until minted: anyone who knows it can mint the paid amount.
        """
        if amount <= 0:
            raise ValueError("mint quote amount must be positive")
        body = PostMintQuoteBolt11Request(amount=amount, unit=unit, description=description).to_dict()
        quote = self._mint_quote(await self._post(f"/v1/mint/quote/{BOLT11}", body))
        if quote.amount != amount or quote.unit != unit:
            raise CashuProtocolError(
                f"asked for a quote of {amount} {unit}, mint quoted {quote.amount} {quote.unit}"
            )
        return quote

    async def mint_quote_state(self, quote_id: str) -> MintQuote:
        """NUT-04 quote check: UNPAID, PAID (mint now) or ISSUED (already minted)."""
        quote = self._mint_quote(await self._get(self._quote_path("mint", quote_id)))
        if quote.quote != quote_id:
            raise CashuProtocolError(f"asked for mint quote {quote_id}, mint returned {quote.quote}")
        return quote

    async def mint(self, quote_id: str, outputs: Sequence[BlindedMessage]) -> list[BlindedSignature]:
        """NUT-04 mint: signatures for `outputs` (summing to the quote's amount), in output order.

        If the answer is lost (`maybe_processed`), the quote may be ISSUED already: restore the outputs
        (NUT-09), so persist them before calling.
        """
        body = PostMintBolt11Request(quote=quote_id, outputs=list(outputs)).to_dict()
        resp = await self._post_value(f"/v1/mint/{BOLT11}", body)
        try:
            sigs = PostMintBolt11Response.from_dict(resp).signatures
        except ValueError as e:
            raise CashuProtocolError(f"bad mint response: {e}") from None
        if len(sigs) != len(outputs):
            raise CashuProtocolError(f"mint returned {len(sigs)} signatures for {len(outputs)} outputs")
        return sigs

    async def melt_quote(self, bolt11: str, unit: str = "sat") -> MeltQuote:
        """NUT-23: what paying `bolt11` costs in `unit`: `amount` plus a `fee_reserve` for routing."""
        body = PostMeltQuoteBolt11Request(request=bolt11, unit=unit).to_dict()
        quote = self._melt_quote(await self._post(f"/v1/melt/quote/{BOLT11}", body))
        if quote.unit != unit:
            raise CashuProtocolError(f"asked for a melt quote in {unit}, mint quoted {quote.unit}")
        # the mint may normalise the invoice's case (Nutshell lower-cases it), but it must be the same one
        if quote.request is not None and quote.request.lower() != bolt11.strip().lower():
            raise CashuProtocolError("melt quote is for another payment request")
        return quote

    async def melt_quote_state(self, quote_id: str) -> MeltQuote:
        """NUT-05 quote check; a PAID quote carries the preimage and (Nutshell) the change signatures.

        This is how a melt whose answer was lost is settled: PAID means the inputs are spent, UNPAID
        that they are free, PENDING that the payment is still in flight.
        """
        quote = self._melt_quote(await self._get(self._quote_path("melt", quote_id)))
        if quote.quote != quote_id:
            raise CashuProtocolError(f"asked for melt quote {quote_id}, mint returned {quote.quote}")
        return quote

    async def melt(
        self,
        quote_id: str,
        inputs: Sequence[Proof],
        outputs: Sequence[BlindedMessage] = (),
        *,
        prefer_async: bool = False,
        timeout_s: float | None = MELT_TIMEOUT_S,
    ) -> MeltQuote:
        """NUT-05 melt: pay the quote's invoice with `inputs`; `outputs` are NUT-08 blank outputs.

        Returns the quote: PAID (inputs spent, `change` signs the first blank outputs) or PENDING (still
        paying: poll `melt_quote_state`). A MintError means the payment was not made and the inputs are
        not spent by it (e.g. 20004 payment failed, 11001 already spent). Anything else (MintUnavailable
        with `maybe_processed`, or CashuProtocolError about an unreadable 200) may hide a payment that
        went out: ask `melt_quote_state` before reusing the inputs. `timeout_s=None`: wait for as long
        as the payment takes.
        """
        body = PostMeltBolt11Request(
            quote=quote_id, inputs=list(inputs), outputs=list(outputs), prefer_async=prefer_async
        ).to_dict()
        resp = await self._post_value(f"/v1/melt/{BOLT11}", body, aiohttp.ClientTimeout(total=timeout_s))
        quote = self._melt_quote(resp)
        if quote.quote != quote_id:
            raise CashuProtocolError(f"melted quote {quote_id}, mint answered for {quote.quote}")
        if len(quote.change) > len(outputs):
            raise CashuProtocolError(f"mint returned {len(quote.change)} change for {len(outputs)} outputs")
        return quote

    @staticmethod
    def _mint_quote(resp: Any) -> MintQuote:
        try:
            return MintQuote.from_dict(resp)
        except ValueError as e:
            raise CashuProtocolError(f"bad mint quote: {e}") from None

    @staticmethod
    def _melt_quote(resp: Any) -> MeltQuote:
        try:
            return MeltQuote.from_dict(resp)
        except ValueError as e:
            raise CashuProtocolError(f"bad melt quote: {e}") from None
