"""One key's rate limits, set by the operator: stored for the fleet, applied in this process at once
(in a new runtime snapshot; the other processes load them within ``jobs.LIMITS_EVERY_S``)."""

from __future__ import annotations

from routstr.core.errors import InvalidRequest, NotFound
from routstr.limits import LimitPolicy, Limits
from routstr.node import Node
from routstr.storage import limit_overrides

MAX_LIMIT = 2**31 - 1  # as the admin API's: past this a rate limit is no limit


async def set_key_limits(node: Node, key_id: int, limits: Limits | None) -> Limits:
    """Store one key's limits (None: back to the defaults) and apply them in this process at once;
    the limits now in force for the key (the API's and the dashboard's). 404 for a key that does not
    exist (its limits could apply to nobody), 400 for a limit out of range."""
    if limits is not None:
        for name, value in zip(
            ("requests_per_minute", "tokens_per_hour", "concurrent"),
            (limits.requests_per_minute, limits.tokens_per_hour, limits.concurrent),
            strict=True,
        ):
            if not 0 <= value <= MAX_LIMIT:
                raise InvalidRequest(
                    f"'{name}' must be a whole number up to {MAX_LIMIT}, 0 for no limit",
                    details={"param": name},
                )
    overrides = await limit_overrides.set_override(node.db, key_id, limits)
    if overrides is None:
        raise NotFound(f"No key with id {key_id}")
    default = node.runtime.current.limits.default
    node.runtime.replace(limits=LimitPolicy(default, overrides))
    return overrides.get(key_id, default)
