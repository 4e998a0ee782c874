"""A circuit breaker per provider: after repeated failures, stop sending it requests for a while,
then let one probe through; its answer decides whether the provider is back."""

from __future__ import annotations

import time
from collections.abc import Callable


class Breaker:
    def __init__(
        self, threshold: int = 3, cooldown_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.failures = 0
        self.open_until = 0.0
        self.probing = False

    @property
    def is_open(self) -> bool:
        return self.failures >= self.threshold

    def available(self) -> bool:
        """May a request go to this provider now? (While open: one probe after each cooldown.)"""
        return not self.is_open or (not self.probing and self.clock() >= self.open_until)

    def attempt(self) -> None:
        """A request is being sent: while open, it is the probe."""
        if self.is_open:
            self.probing = True

    def success(self) -> None:
        self.failures = 0
        self.probing = False

    def failure(self) -> None:
        self.failures += 1
        self.probing = False
        if self.is_open:
            self.open_until = self.clock() + self.cooldown_s
