"""In-process token buckets (per camera key, per login name+address).

Each central instance limits on its own; Nginx's ``limit_req`` in front is the cluster-wide
limit. Buckets idle for an hour are forgotten so the table stays bounded.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from app.central.errors import RateLimited

_IDLE_S = 3600.0
_MAX_KEYS = 100_000


class TokenBucket:
    def __init__(
        self, *, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate_per_s
        self.burst = float(burst)
        self._clock = clock
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, what: str) -> None:
        """Spend one token or raise ``RateLimited`` with how long to wait."""
        now = self._clock()
        with self._lock:
            tokens, last = self._state.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._state[key] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / self.rate)
                raise RateLimited(f"too many requests for this {what}", retry_after_s=max(1, wait))
            self._state[key] = (tokens - 1.0, now)
            if len(self._state) > _MAX_KEYS:
                self._forget_idle(now)

    def exhausted(self, key: str) -> int | None:
        """Seconds to wait when ``key`` has no token left, else None; spends nothing."""
        now = self._clock()
        with self._lock:
            tokens, last = self._state.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        return max(1, math.ceil((1.0 - tokens) / self.rate)) if tokens < 1.0 else None

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, (_, last) in self._state.items() if now - last > _IDLE_S]:
            del self._state[key]
