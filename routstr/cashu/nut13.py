"""NUT-13: deterministic secrets and blinding factors from a seed, so ecash can be restored (NUT-09).

V2 keysets (`01…`) use an HMAC-SHA256 KDF; deprecated V1 keysets (`00…`) use BIP32 paths
m/129372'/0'/{keyset_int}'/{counter}'/{0|1}. Minimal BIP32 (private derivation only) is built in, so no
extra dependency is needed.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata

from coincurve import PrivateKey

from .nut00 import CURVE_ORDER, scalar_bytes

_HARDENED = 0x80000000
KDF_TAG = b"Cashu_KDF_HMAC_SHA256"


def mnemonic_to_seed(mnemonic: str, passphrase: str = "") -> bytes:
    """BIP39 seed: PBKDF2-HMAC-SHA512(NFKD(mnemonic), "mnemonic" + passphrase, 2048 rounds)."""
    words = unicodedata.normalize("NFKD", " ".join(mnemonic.split()))
    salt = unicodedata.normalize("NFKD", "mnemonic" + passphrase)
    return hashlib.pbkdf2_hmac("sha512", words.encode("utf-8"), salt.encode("utf-8"), 2048)


def keyset_id_int(keyset_id: str) -> int:
    """Deprecated V1 mapping of a keyset id to a BIP32 index (V2 ids are cut to 8 bytes first)."""
    raw = bytes.fromhex(keyset_id)[:8]
    return int.from_bytes(raw, "big") % (2**31 - 1)


def _bip32_derive(seed: bytes, path: list[int]) -> bytes:
    """Private key at `path` (indices with the hardened bit already set where wanted)."""
    digest = hmac.digest(b"Bitcoin seed", seed, "sha512")
    key, chain = int.from_bytes(digest[:32], "big"), digest[32:]
    for index in path:
        if index & _HARDENED:
            data = b"\x00" + scalar_bytes(key) + index.to_bytes(4, "big")
        else:
            data = PrivateKey(scalar_bytes(key)).public_key.format() + index.to_bytes(4, "big")
        digest = hmac.digest(chain, data, "sha512")
        tweak = int.from_bytes(digest[:32], "big")
        if tweak >= CURVE_ORDER:
            raise ValueError("invalid BIP32 child (skip this counter)")
        key, chain = (tweak + key) % CURVE_ORDER, digest[32:]
        if key == 0:
            raise ValueError("invalid BIP32 child (skip this counter)")
    return scalar_bytes(key)


def derive_secret_and_r(seed: bytes, keyset_id: str, counter: int) -> tuple[str, PrivateKey]:
    """(secret as 64-char hex string, blinding factor r) for `counter` of `keyset_id`."""
    if counter < 0:
        raise ValueError("counter must not be negative")
    version = keyset_id[:2]
    if version == "01":
        message = KDF_TAG + bytes.fromhex(keyset_id) + counter.to_bytes(8, "big")
        secret = hmac.digest(seed, message + b"\x00", "sha256")
        r = int.from_bytes(hmac.digest(seed, message + b"\x01", "sha256"), "big") % CURVE_ORDER
        if r == 0:
            raise ValueError("derived blinding factor is zero")
        return secret.hex(), PrivateKey(scalar_bytes(r))
    if version == "00":
        base = [129372 | _HARDENED, 0 | _HARDENED, keyset_id_int(keyset_id) | _HARDENED, counter | _HARDENED]
        secret_key = _bip32_derive(seed, [*base, 0])
        r_key = _bip32_derive(seed, [*base, 1])
        return secret_key.hex(), PrivateKey(r_key)
    raise ValueError(f"unsupported keyset id version {version!r}")
