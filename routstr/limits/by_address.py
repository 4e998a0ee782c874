"""Limits on who has no key yet: counted per client address and for everyone, before anything is
spent on them (a dashboard login, an X-Cashu token that would otherwise be redeemed first).

Such counters share the limiter with keys under negative ids, which are never a key's: each use has
its own range (``space``), and within it a client address maps to one id by a hash.
"""

from __future__ import annotations

import hashlib

from routstr.limits.rules import Decision, Limits, RateLimiter

LOGIN_SPACE = 0
XCASHU_SPACE = 1
_SPAN = 1 << 48  # ids of one space: a 48-bit hash of the address, plus one id for "everyone"


def everyone_id(space: int) -> int:
    return -1 - space * (_SPAN + 2)


def address_id(remote: str | None, space: int) -> int:
    digest = hashlib.sha256((remote or "?").encode()).digest()
    return everyone_id(space) - 1 - int.from_bytes(digest[:6], "big")


async def admit(
    limiter: RateLimiter, remote: str | None, space: int, per_address: Limits, total: Limits
) -> Decision | None:
    """None if one more attempt from ``remote`` may go ahead now; else the refusing decision.

    Only attempts per minute are counted (nothing is held while one runs), so each acquire is
    released at once.
    """
    for who, limits in ((address_id(remote, space), per_address), (everyone_id(space), total)):
        decision = await limiter.acquire(who, limits)
        await limiter.release(who, 0)
        if not decision.allowed:
            return decision
    return None
