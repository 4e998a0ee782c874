"""API keys: what a bearer value is, and the hash under which its balance is stored.

Only HMAC-SHA256 hashes of keys reach the database; the spendable value never does.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SK_PREFIX = "sk-"


def new_sk_key() -> str:
    """A fresh session key: ``sk-`` and 32 hex characters (128 bits)."""
    return SK_PREFIX + secrets.token_hex(16)


def key_hash(server_secret: bytes, value: str) -> str:
    return hmac.new(server_secret, value.encode(), hashlib.sha256).hexdigest()


def bearer_kind(value: str) -> str | None:
    """``"sk"``, ``"cashu"`` or ``None`` for a value that is neither."""
    if value.startswith(SK_PREFIX):
        return "sk"
    if value.startswith(("cashuA", "cashuB")):
        return "cashu"
    return None
