"""When a failed delivery is tried again: exponential backoff from a base, capped."""

from __future__ import annotations


def retry_delay_s(attempts: int, base_s: float, cap_s: float) -> float:
    """The wait after the ``attempts``-th failed attempt (1, 2, …): base, 2·base, 4·base, … ≤ cap."""
    if attempts < 1:
        raise ValueError("attempts counts failed attempts, from 1")
    return min(cap_s, base_s * 2.0 ** min(attempts - 1, 62))


def schedule_s(max_attempts: int, base_s: float, cap_s: float) -> list[float]:
    """Every wait between the first attempt and the last (for docs and tests)."""
    return [retry_delay_s(n, base_s, cap_s) for n in range(1, max_attempts)]
