"""Sightings wait here, in capture order, while the wall clock may not stamp them.

Every sighting comes in with the ``monotonic()`` instant of its frame. While the clock is
synchronised (``clock.py``) and nothing is held, it is stamped at once; otherwise it is held in
memory. Once the clock is synchronised, a watcher thread (every ``poll_s``) or the next sighting
stamps the held ones, oldest first, each as

    captured_at = now_wall - (now_mono - captured_mono)

(one ``(now_wall, now_mono)`` pair per flush), before anything newer. Beyond ``max_held`` the
oldest is dropped (``dropped`` is told: it logs and counts).

In memory, not on disk: a monotonic instant means nothing after a reboot (CLOCK_MONOTONIC starts
again at 0), and a power cut, the usual way a Pi loses its memory, is a reboot; a held sighting
on disk could then only be dropped or stamped wrongly. The unsynchronised window is normally the
seconds after boot until NTP answers; the bound caps memory when it is not (a snapshot is at
most 512 KiB).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar
from uuid import uuid4

from app.contract import EARLIEST_CAPTURE
from app.edge.clock import WallClock

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(slots=True)
class Held(Generic[T]):
    item: T
    camera_id: str
    captured_mono: float
    # "held:<12 hex>": names it in logs and in the relay's cause until it has an event id.
    token: str


class ClockHold(Generic[T]):
    """Stamps items with a time only a synchronised clock can give; holds them until then.

    ``stamp(held, captured_at, was_held)`` is called in capture order, under the hold's lock
    (so a sighting never overtakes a held one). Thread-safe."""

    def __init__(
        self,
        clock: WallClock,
        stamp: Callable[[Held[T], datetime, bool], None],
        *,
        max_held: int = 200,
        dropped: Callable[[Held[T], str], None] = lambda held, why: None,
        poll_s: float = 1.0,
    ) -> None:
        if max_held < 1:
            raise ValueError("max_held must be at least 1")
        self.clock = clock
        self.max_held = max_held
        self.poll_s = poll_s
        self._stamp = stamp
        self._dropped = dropped
        self._held: deque[Held[T]] = deque()
        self._lock = threading.RLock()
        self.held_total = 0  # ever held
        self.dropped_total = 0
        self.stamped_late_total = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # The monotonic instant from which the clock has been seen synchronised: a frame taken
        # after it carries a wall time that may be used as it is.
        self.synced_since: float | None = None
        self.synchronised = False
        self._looked = False
        self._look()

    # -- state -------------------------------------------------------------------------------

    def _look(self) -> bool:
        """Ask the clock (under the lock, or before any other thread exists)."""
        synced = self.clock.synchronised()
        if synced and self.synced_since is None:
            self.synced_since = self.clock.monotonic()
        elif not synced and (self.synchronised or not self._looked):
            log.warning(
                "clock: not synchronised (wall clock %s): sightings are held until it is",
                self.clock.now().isoformat(),
            )
            self.synced_since = None
        self._looked = True
        self.synchronised = synced
        return synced

    @property
    def held(self) -> int:
        with self._lock:
            return len(self._held)

    def describe(self) -> str | None:
        """For the heartbeat's ``last_error``: None while the clock is synchronised."""
        with self._lock:
            if self.synchronised:
                return None
            held = len(self._held)
            text = f"clock not synchronised; {held} sighting{'' if held == 1 else 's'} held"
            if self.dropped_total:
                text += f" ({self.dropped_total} dropped: more than {self.max_held})"
            return text

    # -- the way in ----------------------------------------------------------------------------

    def submit(
        self,
        item: T,
        *,
        camera_id: str,
        captured_mono: float,
        captured_wall: datetime | None = None,
        on_held: Callable[[Held[T]], None] | None = None,
    ) -> bool:
        """Stamp ``item`` now (True) or hold it (False; ``on_held`` is called under the lock,
        before any flush can see it). ``captured_wall``: the wall time read with the frame,
        used when the clock was already synchronised then."""
        with self._lock:
            held = Held(item, camera_id, captured_mono, f"held:{uuid4().hex[:12]}")
            if self._look():
                self._flush()
                self._stamp(held, self._live_stamp(captured_mono, captured_wall), False)
                return True
            self._held.append(held)
            self.held_total += 1
            if on_held is not None:
                on_held(held)
            while len(self._held) > self.max_held:
                oldest = self._held.popleft()
                self.dropped_total += 1
                self._dropped(oldest, f"more than {self.max_held} sightings held")
            return False

    def _live_stamp(self, captured_mono: float, captured_wall: datetime | None) -> datetime:
        since = self.synced_since
        if (
            captured_wall is not None
            and since is not None
            and captured_mono >= since
            and captured_wall >= EARLIEST_CAPTURE
        ):
            return captured_wall
        # Taken before the clock was seen synchronised: its wall time may be from before a step.
        return self._retro(captured_mono, self.clock.now(), self.clock.monotonic())

    @staticmethod
    def _retro(captured_mono: float, now_wall: datetime, now_mono: float) -> datetime:
        return now_wall - timedelta(seconds=max(0.0, now_mono - captured_mono))

    # -- the way out ---------------------------------------------------------------------------

    def poll(self) -> int:
        """Look at the clock; stamp what is held if it is synchronised. Returns how many."""
        with self._lock:
            if not self._look():
                return 0
            return self._flush()

    def _flush(self) -> int:
        if not self._held:
            return 0
        now_wall, now_mono = self.clock.now(), self.clock.monotonic()
        count = len(self._held)
        oldest = now_mono - self._held[0].captured_mono
        while self._held:
            held = self._held.popleft()
            try:
                self._stamp(held, self._retro(held.captured_mono, now_wall, now_mono), True)
            except Exception:
                log.exception("clock: stamping %s of %s failed", held.token, held.camera_id)
            self.stamped_late_total += 1
        log.info(
            "clock: synchronised (%s); stamped %d held sighting(s), the oldest %.1f s old",
            now_wall.isoformat(),
            count,
            oldest,
        )
        return count

    # -- the watcher ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="clock-hold", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll()
            except Exception:
                log.exception("clock: the hold's poll failed")

    def close(self) -> int:
        """Stop watching; stamp what is held if the clock allows, else drop it (each one told
        to ``dropped``). Returns the number dropped."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        with self._lock:
            if self._look():
                self._flush()
                return 0
            lost = len(self._held)
            while self._held:
                held = self._held.popleft()
                self.dropped_total += 1
                self._dropped(held, "the agent stopped before the clock was synchronised")
            return lost
