"""One key's rate limits, set by the operator: stored for the fleet, applied in this process at once
(the other processes load them within ``jobs.LIMITS_EVERY_S``)."""

from __future__ import annotations

from routstr.limits import LimitPolicy, Limits
from routstr.node import Node
from routstr.storage import limit_overrides


async def set_key_limits(node: Node, key_id: int, limits: Limits | None) -> Limits:
    """Store one key's limits (None: back to the defaults) and apply them in this process at once;
    the limits now in force for the key (the API's and the dashboard's)."""
    overrides = await limit_overrides.set_override(node.db, key_id, limits)
    default = node.pipeline.limits.default
    node.pipeline.limits = LimitPolicy(default, overrides)
    return overrides.get(key_id, default)
