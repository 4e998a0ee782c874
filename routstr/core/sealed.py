"""Secrets the node has to read back (webhook signing secrets, provider API keys), sealed at rest.

Keys that only need checking are stored as HMACs; these cannot be, because the node signs with them
or sends them on. They are encrypted with AES-256-GCM (the ``cryptography`` package) under a key
derived by HKDF from the node's secret and a purpose label, so a value sealed for one purpose does
not open as another, and any change to the stored text is detected. Stored form:
``v1:`` + base64url(nonce ‖ ciphertext ‖ tag).
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = "v1:"
_NONCE = 12


class SealError(ValueError):
    """The stored value is not one this node sealed for this purpose (or it was altered)."""


def _key(node_secret: bytes, purpose: str) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"routstr-sealed", info=purpose.encode())
    return AESGCM(hkdf.derive(node_secret))


def seal(node_secret: bytes, purpose: str, plaintext: str) -> str:
    nonce = os.urandom(_NONCE)
    box = _key(node_secret, purpose).encrypt(nonce, plaintext.encode(), purpose.encode())
    return _VERSION + base64.urlsafe_b64encode(nonce + box).decode()


def unseal(node_secret: bytes, purpose: str, sealed: str) -> str:
    if not sealed.startswith(_VERSION):
        raise SealError("not a sealed value")
    try:
        raw = base64.urlsafe_b64decode(sealed[len(_VERSION) :])
        plain = _key(node_secret, purpose).decrypt(raw[:_NONCE], raw[_NONCE:], purpose.encode())
    except (InvalidTag, ValueError) as e:
        raise SealError("sealed value does not open with this node's secret") from e
    return plain.decode()
