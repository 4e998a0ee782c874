"""One request's timing: when it entered the node, how long it waited for the upstream.

The middleware starts a ``Trace`` per request; the pipeline adds the upstream's time and names the
endpoint and model. The overhead is the node's own time: everything but the wait for the upstream.
"""

from __future__ import annotations

from time import perf_counter

from aiohttp import web
from multidict import CIMultiDict

OVERHEAD_HEADER = "X-Routstr-Overhead-Ms"


class Trace:
    __slots__ = ("endpoint", "model", "overhead_s", "start", "upstream_s")

    def __init__(self, start: float | None = None) -> None:
        self.start = perf_counter() if start is None else start
        self.endpoint = ""  # a billed endpoint family (set by the pipeline); empty for other routes
        self.model = ""  # set once a provider accepted the request: users' made-up names never count
        self.upstream_s = 0.0  # waiting for providers: sending until headers, and reading bodies
        self.overhead_s = -1.0  # set when the answer's headers are ready

    def stamp(self, headers: CIMultiDict[str]) -> None:
        """The node's time so far minus the upstream's, into the answer's headers (in ms)."""
        overhead = perf_counter() - self.start - self.upstream_s
        self.overhead_s = overhead if overhead > 0.0 else 0.0
        headers[OVERHEAD_HEADER] = f"{self.overhead_s * 1000:.3f}"


TRACE: web.RequestKey[Trace] = web.RequestKey("trace", Trace)
