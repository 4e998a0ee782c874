"""Independent references for the discovery tests: NIP-01's event id, BIP-340 verification and the
key derivation, each computed here from its definition (hashlib, hmac, coincurve), not by the code
under test."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import bech32
from coincurve import PrivateKey, PublicKeyXOnly

# a fixed secret key (not a real node's) and its NIP-19 and x-only forms, for known-answer tests
SECRET_HEX = "5c0c523f52a5b6fad39ed2403092df8cebc36318b39383bca6c00808626fab3a"


def xonly_pubkey(secret: bytes) -> str:
    return PrivateKey(secret).public_key_xonly.format().hex()


def npub_of(pubkey_hex: str) -> str:
    return str(bech32.bech32_encode("npub", bech32.convertbits(bytes.fromhex(pubkey_hex), 8, 5) or []))


def nsec_of(secret: bytes) -> str:
    return str(bech32.bech32_encode("nsec", bech32.convertbits(secret, 8, 5) or []))


def nip01_id(event: dict[str, Any]) -> str:
    """sha256 of ``[0, pubkey, created_at, kind, tags, content]``, compact, UTF-8 as is (NIP-01)."""
    fields = [0, event["pubkey"], event["created_at"], event["kind"], event["tags"], event["content"]]
    return hashlib.sha256(json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


def schnorr_valid(event: dict[str, Any]) -> bool:
    key = PublicKeyXOnly(bytes.fromhex(event["pubkey"]))
    return bool(key.verify(bytes.fromhex(event["sig"]), bytes.fromhex(event["id"])))


def hkdf_sha256(secret: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """RFC 5869, written out."""
    prk = hmac.new(salt, secret, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def derived_pubkey(node_secret: bytes) -> str:
    """The public key a node with this secret and no NSEC announces under (see routstr.discovery.keys)."""
    return xonly_pubkey(hkdf_sha256(node_secret, b"routstr-nostr", b"nostr identity v1"))
