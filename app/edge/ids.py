"""UUIDv7 event ids (RFC 9562), made at capture: time-ordered, so capture order survives."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import datetime
from uuid import UUID

_MS_MASK = (1 << 48) - 1
_SEQ_MAX = 0xFFF


def uuid7_from_parts(unix_ms: int, seq: int, rand62: int) -> UUID:
    """Lay out a UUIDv7: 48-bit ms time, version 7, 12-bit sequence, variant, 62 random bits."""
    value = (
        (unix_ms & _MS_MASK) << 80
        | 0x7 << 76
        | (seq & _SEQ_MAX) << 64
        | 0b10 << 62
        | (rand62 & ((1 << 62) - 1))
    )
    return UUID(int=value)


def uuid7_time_ms(value: UUID) -> int:
    """The millisecond timestamp a UUIDv7 carries."""
    return value.int >> 80


class EventIdFactory:
    """Monotonic UUIDv7s: within one millisecond the 12-bit field counts up (RFC 9562, method 1)."""

    def __init__(
        self,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        randbytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._clock_ms = clock_ms
        self._randbytes = randbytes
        self._last_ms = -1
        self._seq = 0
        self._lock = threading.Lock()

    def new(self, at: datetime | None = None) -> UUID:
        ms = int(at.timestamp() * 1000) if at is not None else self._clock_ms()
        with self._lock:
            if ms <= self._last_ms:
                # Same (or an earlier, clock stepped back) millisecond: keep ordering by counting.
                ms = self._last_ms
                self._seq += 1
                if self._seq > _SEQ_MAX:
                    ms += 1
                    self._seq = 0
            else:
                # Start low in the counter so many ids in one ms still fit.
                self._seq = int.from_bytes(self._randbytes(2), "big") & 0x3FF
            self._last_ms = ms
            seq = self._seq
        rand62 = int.from_bytes(self._randbytes(8), "big")
        return uuid7_from_parts(ms, seq, rand62)
