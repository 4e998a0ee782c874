"""The mints this node trusts, one pooled client each. No other mint is ever contacted."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from routstr.cashu.errors import MintError, MintUnavailable
from routstr.cashu.mint_client import MintClient
from routstr.cashu.nut01 import Keyset
from routstr.cashu.nut02 import cheapest_active
from routstr.core.errors import ServiceUnavailable
from routstr.net.outbound import OutboundPolicy
from routstr.wallet.inflight import InFlight


def canonical_mint_url(url: str) -> str:
    return url.strip().rstrip("/")


@dataclass(frozen=True, slots=True)
class ForeignMintPolicy:
    """The operator's limits for converting other mints' tokens (melt there, mint at the primary)."""

    max_sats: int  # per token
    daily_sats: int  # over all conversions in 24 hours
    allow_http: bool = False  # plain-http mints (local tests only: a token names any URL)
    allow_private: tuple[str, ...] = ()  # hosts (or "*") that may be private (routstr.net.outbound)

    def allows(self, url: str) -> bool:
        return url.startswith("https://") or (self.allow_http and url.startswith("http://"))

    @property
    def outbound(self) -> OutboundPolicy:
        """Where calls to a token's mint may go (its URL is the user's choice: the SSRF rule)."""
        return OutboundPolicy(self.allow_http, self.allow_private)


@dataclass(slots=True)
class MintHealth:
    up: bool = True  # until a check or a call says otherwise
    checked_at: float = 0.0  # unix seconds of the last check or call
    error: str = ""


class CountedMintClient(MintClient):
    """A mint client that counts its failed calls into ``errors[(label, kind)]`` for /metrics:
    ``unavailable`` (no usable answer) or ``rejected`` (a definite error answer)."""

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        timeout_s: float,
        errors: dict[tuple[str, str], int],
        label: str = "",  # default: the mint's URL
    ) -> None:
        super().__init__(url, session, timeout_s=timeout_s)
        self._errors, self._label = errors, label or self.url

    async def _request(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super()._request(*args, **kwargs)
        except MintUnavailable:
            self._count("unavailable")
            raise
        except MintError:
            self._count("rejected")
            raise

    def _count(self, kind: str) -> None:
        key = (self._label, kind)
        self._errors[key] = self._errors.get(key, 0) + 1


class MintRegistry:
    """The node's mints: their clients, keysets and health, and the swaps it has sent them and not yet
    finished (``in_flight``, which crash recovery leaves alone)."""

    def __init__(
        self,
        urls: tuple[str, ...],
        session: aiohttp.ClientSession,
        timeout_s: float,  # MINT_TIMEOUT (Settings.mint_timeout_s): no default of its own
        max_exposure_msat: int = 0,
        foreign: ForeignMintPolicy | None = None,
    ) -> None:
        self.urls = tuple(canonical_mint_url(u) for u in urls)
        self._session, self._timeout_s = session, timeout_s
        self.errors: dict[tuple[str, str], int] = {}  # (mint, kind) -> failed calls, for /metrics
        self._clients = {u: CountedMintClient(u, session, timeout_s, self.errors) for u in self.urls}
        # tokens of other mints, converted into the primary mint over Lightning (off: None)
        self.foreign = foreign
        self._active: dict[tuple[str, str], Keyset] = {}
        self.health = {u: MintHealth() for u in self.urls}
        # the most eCash of one mint the node holds (0: no limit): a mint that fails takes at most this
        self.max_exposure_msat = max_exposure_msat
        self.in_flight = InFlight()  # one per node: its operations and its recovery share it

    def mark(self, url: str, up: bool, error: str = "") -> None:
        h = self.health.get(canonical_mint_url(url))
        if h is not None:
            h.up, h.checked_at, h.error = up, time.time(), error

    def require_up(self, url: str) -> None:
        """Fail fast (503, nothing spent) for a mint the last health check found down (one failed
        call does not: it may be one slow answer), until the next check (every 30 s) finds it up."""
        h = self.health.get(canonical_mint_url(url))
        if h is not None and not h.up:
            raise ServiceUnavailable(  # the cause is logged for the operator, not told to users
                "The mint is unavailable; your token was not used, try again later",
                code="mint_unavailable",
            )

    async def check_health(self) -> None:
        """Ask every mint for its keysets (which also notices a key rotation)."""
        for url, client in self._clients.items():
            try:
                await client.refresh()
            except MintUnavailable as e:
                self.mark(url, False, str(e))
            except Exception as e:  # a mint answering garbage is as good as down
                self.mark(url, False, f"{type(e).__name__}: {e}")
            else:
                self.mark(url, True)
                self.forget_active(url)

    @property
    def primary(self) -> str:
        return self.urls[0]

    def is_trusted(self, url: str) -> bool:
        return canonical_mint_url(url) in self._clients

    def accepts(self, url: str) -> bool:
        """Trusted, or a foreign mint whose tokens the operator lets the node convert."""
        return self.is_trusted(url) or (self.foreign is not None and self.foreign.allows(url))

    def home_of(self, url: str) -> str:
        """The mint a token's value ends up at: its own if trusted, else the primary (converted)."""
        return canonical_mint_url(url) if self.is_trusted(url) else self.primary

    def foreign_client(self, url: str, session: aiohttp.ClientSession) -> MintClient:
        """A client for a mint the node does not trust (only to melt a token there), over ``session``:
        one its outbound policy guards (``self.foreign.outbound.session()``, see wallet/convert.py)."""
        url = canonical_mint_url(url)
        if self.foreign is None or not self.foreign.allows(url):
            raise ValueError(f"mint {url} is not one the node may contact")
        # one label for all of them: their URLs come from users' tokens
        return CountedMintClient(url, session, self._timeout_s, self.errors, "foreign")

    def client(self, url: str) -> MintClient:
        return self._clients[canonical_mint_url(url)]

    async def active_keyset(self, url: str, unit: str) -> Keyset:
        """The keyset new outputs are made for: the cheapest active one of ``unit``, by the rule of
        ``nut02.cheapest_active`` (as ``MintClient.active_keyset``), cached until a health check
        refreshes the mint's keysets."""
        key = (canonical_mint_url(url), unit)
        ks = self._active.get(key)
        if ks is not None:
            return ks
        client = self.client(url)
        try:
            chosen = cheapest_active(await client.keysets(), unit)  # the client's rule too
            if chosen is None:
                raise ServiceUnavailable(f"Mint {url} has no active keyset for unit {unit!r}")
            ks = await client.keyset(chosen.id)
        except MintUnavailable:
            raise ServiceUnavailable(
                "The mint is unavailable; try again later", code="mint_unavailable"
            ) from None
        self._active[key] = ks
        return ks

    async def keyset(self, url: str, keyset_id: str) -> Keyset:
        """Public keys of one keyset (never change for an id; the client caches them)."""
        return (await self.client(url).keys(keyset_id))[0]

    def forget_active(self, url: str) -> None:
        for key in [k for k in self._active if k[0] == canonical_mint_url(url)]:
            del self._active[key]
