"""The node's Nostr key: ``NSEC`` if the operator set one, else derived from the node secret.

Deriving it (HKDF-SHA256 under a purpose label of its own, as ``core/sealed.py`` derives sealing keys)
means nothing new is stored anywhere, every process of a fleet signs with the same key, and the key
is the same after every restart, so clients keep finding the node under one ``npub``. The derivation
is part of the node's identity: changing its label or salt changes the ``npub`` of every node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import nostr_sdk
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_SALT = b"routstr-nostr"
_PURPOSE = "nostr identity v1"
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")


class NostrKeyError(ValueError):
    """Not a Nostr secret key (worded for the operator; the value itself is never repeated)."""


@dataclass(frozen=True)
class NostrKey:
    """A signing key; its repr shows the public half only."""

    keys: nostr_sdk.Keys = field(repr=False)

    @property
    def public_hex(self) -> str:
        return str(self.keys.public_key().to_hex())

    @property
    def npub(self) -> str:
        return str(self.keys.public_key().to_bech32())


def parse_secret_key(text: str) -> NostrKey:
    """``nsec1…`` (NIP-19) or 64 hex digits; anything else is refused, naming what is expected."""
    value = text.strip()
    if not (value.lower().startswith("nsec1") or _HEX_KEY.fullmatch(value)):
        raise NostrKeyError("must be a Nostr secret key: nsec1… or 64 hex digits (never an npub)")
    try:
        return NostrKey(nostr_sdk.Keys(nostr_sdk.SecretKey.parse(value)))
    except nostr_sdk.NostrSdkError:
        raise NostrKeyError("is not a valid Nostr secret key (bad nsec checksum, or out of range)") from None


def derive_key(node_secret: bytes) -> NostrKey:
    """The key derived from the node secret. A derived value that is not a valid secp256k1 scalar
    (probability about 2^-128) is derived again with a counter in the label."""
    for attempt in range(16):
        label = _PURPOSE if attempt == 0 else f"{_PURPOSE} #{attempt}"
        raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=label.encode()).derive(node_secret)
        try:
            return NostrKey(nostr_sdk.Keys(nostr_sdk.SecretKey.from_bytes(raw)))
        except nostr_sdk.NostrSdkError:
            continue
    raise NostrKeyError("no valid key could be derived from the node secret")  # not reachable in practice


def node_key(nsec: str, node_secret: bytes) -> NostrKey:
    """The node's key: NSEC when set (already validated by the settings), else the derived one."""
    return parse_secret_key(nsec) if nsec else derive_key(node_secret)
