"""The node's announcement: a Nostr event of kind 38421 (Routstr's RIP-02, not a merged NIP).

Pure: given what the node offers, a key and a time, the signed event as NIP-01 JSON. Kind 38421 is
parameterized replaceable (30000-39999): relays keep only the newest event per (author, ``d``), so a
renewal replaces the previous announcement instead of piling up. Clients (routstr-sdk's
ModelManager) read the ``u`` tags to reach the node; the rest says what it accepts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import nostr_sdk

from routstr.discovery.keys import NostrKey

KIND = 38421


@dataclass(frozen=True)
class Listing:
    """What the node announces."""

    provider_id: str  # the ``d`` tag: one announcement per (key, provider id)
    http_url: str
    onion_url: str
    mints: tuple[str, ...]
    version: str
    name: str
    about: str

    def tags(self) -> list[list[str]]:
        """``d``, then a ``u`` per address that is set, a ``mint`` per mint, and ``version``."""
        tags = [["d", self.provider_id]]
        tags += [["u", url] for url in (self.http_url, self.onion_url) if url]
        tags += [["mint", url] for url in self.mints]
        tags.append(["version", self.version])
        return tags

    def content(self) -> str:
        return json.dumps({"name": self.name, "about": self.about}, ensure_ascii=False)


def build_event(listing: Listing, key: NostrKey, created_at: int) -> dict[str, Any]:
    """The signed event (id = sha256 of the NIP-01 serialization, BIP-340 Schnorr signature)."""
    builder = (
        nostr_sdk.EventBuilder(nostr_sdk.Kind(KIND), listing.content())
        .tags([nostr_sdk.Tag.parse(t) for t in listing.tags()])
        .custom_created_at(nostr_sdk.Timestamp.from_secs(created_at))
    )
    event = key.keys.sign_event(builder.finalize_unsigned(key.keys.public_key()))
    out: dict[str, Any] = json.loads(event.as_json())
    return out
