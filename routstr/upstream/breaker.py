"""Circuit breakers of a provider: one for its connection, one per model it failed on.

A model the provider answers with 500s or 429s (broken, or failed on purpose by a caller) cools down
on its own; the provider's other models keep answering. Only no connection or no answer in time says
the provider itself is down. After repeated failures a circuit stops taking requests for a while,
then lets one probe through; its answer decides whether it is back. An upstream 429's
``Retry-After`` holds the (provider, model) pair back at least that long. Nothing here refuses a
request: routing (``providers.route``) still tries the least recently failed offer when every one is
cooling down, so a breaker never turns the only upstream off.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

MAX_RETRY_AFTER_S = 300.0  # an upstream asking for more is not taken at its word
MAX_TRACKED_MODELS = 1024  # circuits kept per provider: model ids come from requests, keep them few
# The defaults of PROVIDER_FAILURES_TO_OPEN and PROVIDER_COOLDOWN_SECONDS (routstr.config reads them
# from here: config imports this package, so this package cannot import config)
FAILURES_TO_OPEN = 3
COOLDOWN_S = 30


class Circuit:
    """One breaker: ``threshold`` retryable failures in a row open it for ``cooldown_s``."""

    def __init__(self, threshold: int, cooldown_s: float, clock: Callable[[], float]) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.failures = 0
        self.open_until = 0.0  # no request before this (cooldown, or an upstream's Retry-After)
        self.probe_until = 0.0  # while open: a probe is on its way (a lost one frees the slot then)
        self.last_failure = float("-inf")

    @property
    def is_open(self) -> bool:
        return self.failures >= self.threshold

    def available(self) -> bool:
        """May a request go now? (While open: one probe after each cooldown.)"""
        now = self.clock()
        return now >= self.open_until and (not self.is_open or now >= self.probe_until)

    def attempt(self) -> None:
        """A request is being sent: while open, it is the probe."""
        if self.is_open:
            self.probe_until = self.clock() + self.cooldown_s

    def success(self) -> None:
        """It answered: closed, whatever a cooldown or Retry-After still said."""
        self.failures = 0
        self.open_until = self.probe_until = 0.0

    def failure(self, retry_after_s: float | None = None) -> None:
        """A retryable failure; ``retry_after_s`` (an upstream's 429) holds it back at least that long,
        even before it opens."""
        now = self.last_failure = self.clock()
        self.failures += 1
        self.probe_until = 0.0
        hold = min(max(retry_after_s or 0.0, 0.0), MAX_RETRY_AFTER_S)
        if self.is_open:
            hold = max(hold, self.cooldown_s)
        if hold:
            self.open_until = max(self.open_until, now + hold)

    def no_verdict(self) -> None:
        """The request sent says nothing about this circuit: a probe it carried is over."""
        self.probe_until = 0.0


class Breaker:
    """A provider's breakers: its connection's (what ``is_open`` and ``available()`` report, e.g. to
    ``/ready`` and the metrics) and one per (provider, model) that failed."""

    def __init__(
        self,
        threshold: int = FAILURES_TO_OPEN,
        cooldown_s: float = COOLDOWN_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.link = Circuit(threshold, cooldown_s, clock)
        self.models: dict[str, Circuit] = {}  # only models that failed since their last success

    @property
    def is_open(self) -> bool:
        """Is the provider itself cooling down (no connection, timeouts)?"""
        return self.link.is_open

    def available(self, model: str | None = None) -> bool:
        """May a request go to the provider now (for ``model``: and to that model)?"""
        if not self.link.available():
            return False
        circuit = None if model is None else self.models.get(model)
        return circuit is None or circuit.available()

    def last_failure(self, model: str) -> float:
        """When the provider or the model last failed (-inf: never): routing's last resort takes the
        least recently failed offer."""
        circuit = self.models.get(model)
        return max(self.link.last_failure, circuit.last_failure if circuit else float("-inf"))

    def attempt(self, model: str) -> None:
        self.link.attempt()
        circuit = self.models.get(model)
        if circuit is not None:
            circuit.attempt()

    def success(self, model: str) -> None:
        """It answered, and not with a retryable error: the provider and the model are fine."""
        self.link.success()
        self.models.pop(model, None)

    def failure(self, model: str, retry_after_s: float | None = None) -> None:
        """It answered with a 429 or 5xx: the connection is fine, the model is failing."""
        self.link.success()
        circuit = self.models.get(model)
        if circuit is None:
            if len(self.models) >= MAX_TRACKED_MODELS:  # forget the longest-quiet one
                del self.models[min(self.models, key=lambda m: self.models[m].last_failure)]
            circuit = self.models[model] = Circuit(self.threshold, self.cooldown_s, self.clock)
        circuit.failure(retry_after_s)

    def unreachable(self, model: str) -> None:
        """No connection, or no answer in time: the provider is failing, whatever the model."""
        self.link.failure()
        circuit = self.models.get(model)
        if circuit is not None:
            circuit.no_verdict()


def retry_after_seconds(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """An upstream's ``Retry-After`` (seconds, or an HTTP date) in seconds from now; None if absent or
    unreadable; never more than ``MAX_RETRY_AFTER_S``."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        return None
    return min(max(when.timestamp() - now(), 0.0), MAX_RETRY_AFTER_S)
