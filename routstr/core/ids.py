"""Identifiers the node makes itself."""

from __future__ import annotations

import os
import time


def time_ordered_id() -> str:
    """32 hex characters: nanosecond time first (so index inserts append), then 64 random bits."""
    return f"{time.time_ns():016x}{os.urandom(8).hex()}"
