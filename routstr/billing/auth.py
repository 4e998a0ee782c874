"""Who pays: the bearer value (``sk-…`` key or a Cashu token) → the key whose balance is used.

A Cashu token used as a key is redeemed once; afterwards the same token (in V3 or V4 form) maps to
the same balance through its identity hash, and so does the ``sk-`` key its balance info hands out
(``api_key``: looked up by its second hash only when no key has it as its own). Hash lookups are
cached in memory: the mapping from a key to its row never changes, so the cache holds no money state.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from routstr.cashu.identity import holder_mark, holder_matches, token_identity
from routstr.cashu.tokens import Token
from routstr.core.errors import ApiError, AuthenticationFailed, PaymentRequired
from routstr.core.keys import bearer_kind, key_hash
from routstr.storage import accounts, wallet_store
from routstr.storage.db import Database
from routstr.wallet.mints import MintRegistry
from routstr.wallet.redeem import Redeemer, Target, parse_token

_CACHE_SIZE = 100_000


def bearer_value(headers: Mapping[str, str]) -> str | None:
    """The key from ``Authorization: Bearer …`` or ``x-api-key`` (Anthropic clients send that)."""
    auth = headers.get("Authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    api_key = headers.get("x-api-key")
    return api_key.strip() if api_key and api_key.strip() else None


def missing_key(status: int = 401) -> ApiError:
    """No key and no token. 401 is what OpenAI SDKs expect; NUT-24 wallets look for a 402."""
    how = "send 'Authorization: Bearer sk-…', a Cashu token as the key, or a Cashu token in X-Cashu"
    if status == 402:
        return PaymentRequired(f"Payment required: {how}")
    return AuthenticationFailed(f"Missing API key: {how}")


class Authenticator:
    def __init__(self, db: Database, mints: MintRegistry, redeemer: Redeemer, secret: bytes) -> None:
        self.db = db
        self.mints = mints
        self.redeemer = redeemer
        self.secret = secret
        self._ids: OrderedDict[str, int] = OrderedDict()

    def require_bearer(self, headers: Any) -> str:
        value = self.bearer(headers)
        if value is None:
            raise missing_key()
        return value

    def bearer(self, headers: Any) -> str | None:
        """The bearer value if there is one (None if absent); a malformed one is refused."""
        value = bearer_value(headers)
        if value is not None and bearer_kind(value) is None:
            raise AuthenticationFailed("Invalid API key: expected an sk-… key or a Cashu token")
        return value

    async def key_id(self, value: str, remote: str | None = None) -> int:
        """The key id for a bearer value, redeeming a Cashu token the first time it is seen.

        ``remote``: the client's address, which a refused redemption counts against (the redeemer's
        gate); None: not counted (callers that cannot say who asks)."""
        cached = self._ids.get(value)
        if cached is not None:
            return cached
        if bearer_kind(value) == "sk":
            khash = key_hash(self.secret, value)
            async with self.db.read() as conn:
                row = await accounts.key_by_hash(conn, khash)
                if row is None:  # the sk- key a token key's balance info handed out (rare: a miss)
                    row = await accounts.key_by_alias(conn, khash)
            if row is None:
                raise AuthenticationFailed("Invalid API key")
            key_id = row.id
        else:
            token = parse_token(value, self.mints)
            khash = token_identity(self.secret, token)
            async with self.db.read() as conn:
                row = await accounts.key_by_hash(conn, khash)
            if row is not None and row.kind == "token" and await self._opens(khash, token):
                key_id = row.id
            else:  # new, still being redeemed, or not presented by its holder: the redeemer decides
                target = Target(new_key_hash=khash, new_key_kind="token")
                async with self.redeemer.gate.attempt(remote):
                    redeemed = await self.redeemer.redeem(token, target)
                key_id = redeemed.key_id
        self._remember(value, key_id)
        return key_id

    async def _opens(self, khash: str, token: Token) -> bool:
        """A token key exists once its redemption is recorded; it is usable once that finished, by
        a presenter who holds what its redeemer held (``cashu.identity``)."""
        async with self.db.read() as conn:
            swap = await wallet_store.swap_by_token_hash(conn, khash)
        if swap is None or swap.state != wallet_store.DONE:
            return False
        return holder_matches(swap.holder_mark, holder_mark(self.secret, token))

    def _remember(self, value: str, key_id: int) -> None:
        self._ids[value] = key_id
        if len(self._ids) > _CACHE_SIZE:
            self._ids.popitem(last=False)
