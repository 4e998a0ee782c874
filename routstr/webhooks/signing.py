"""``X-Webhook-Signature: sha256=<hex>``: HMAC-SHA256 of the raw body, keyed with the webhook's secret.

What a receiver does to trust a delivery: recompute the HMAC over the bytes it received (before any
JSON parsing) and compare in constant time.
"""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="


def signature(secret: str, body: bytes) -> str:
    return PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    return hmac.compare_digest(signature(secret, body), header.strip())
