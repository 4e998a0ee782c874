"""Limits on who has no key yet: counted per client address and for everyone, before anything is
spent on them (an X-Cashu token that would otherwise be redeemed first), and the backoff of
dashboard logins per client address.

Such counters share the limiter with keys under negative ids, which are never a key's: each use has
its own range (``space``), and within it a client address maps to one id by a hash. The login
backoff keeps its records where the limiter keeps its counters: in this process, or in the same
Redis (under the same prefix) for a fleet.
"""

from __future__ import annotations

import hashlib
from ipaddress import IPv6Address, ip_address
from weakref import WeakKeyDictionary

from routstr.limits.backoff import Backoff, BackoffPolicy, MemoryBackoff
from routstr.limits.rules import Decision, Limits, RateLimiter

LOGIN_SPACE = 0  # was dashboard logins (they back off per address now); the range stays reserved
XCASHU_SPACE = 1
REDEEM_SPACE = 2  # refused token redemptions (routstr.wallet.redeem_gate)
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


def address_group(remote: str | None) -> str:
    """The unit one client is counted by: an IPv4 address, or an IPv6 address's /64 (what one
    subscriber usually gets: counting single IPv6 addresses would hand out 2^64 fresh ones)."""
    try:
        ip = ip_address(remote or "")
    except ValueError:
        return remote or "?"
    if isinstance(ip, IPv6Address):
        mapped = ip.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        return str(IPv6Address(int(ip) >> 64 << 64)) + "/64"
    return str(ip)


_BACKOFFS: WeakKeyDictionary[RateLimiter, dict[str, Backoff]] = WeakKeyDictionary()


def backoff_for(limiter: RateLimiter, space: str, policy: BackoffPolicy) -> Backoff:
    """The backoff records of ``space`` kept beside ``limiter``'s counters (one store per limiter and
    space, made on first use): fleet-wide when the limiter is Redis'."""
    stores = _BACKOFFS.setdefault(limiter, {})
    store = stores.get(space)
    if store is None:
        # the Redis limiter's own client (it closes it at shutdown) and namespace
        client, prefix = getattr(limiter, "_redis", None), getattr(limiter, "_prefix", "routstr:rl")
        if client is None:
            store = MemoryBackoff(policy)
        else:
            from routstr.limits.redis_backoff import RedisBackoff  # only a fleet needs redis

            store = RedisBackoff(client, f"{prefix}:{space}", policy)
        stores[space] = store
    return store
