"""Identifiers the node makes itself."""

from __future__ import annotations

import os
import socket
import time


def time_ordered_id() -> str:
    """32 hex characters: nanosecond time first (so index inserts append), then 64 random bits."""
    return f"{time.time_ns():016x}{os.urandom(8).hex()}"


# This process, as recorded on the swaps it sends and the job leases it holds: host, pid, and a
# random part (a pid is reused after a restart).
PROCESS = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


def process_is_dead(process: str | None) -> bool:
    """True only if ``process`` ran on this host and its pid is gone (a crash, a kill). Another
    host's process cannot be checked from here: False."""
    if not process:
        return False
    host, _, rest = process.partition(":")
    pid, _, _ = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit() or process == PROCESS:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
