"""Every ``interval_s`` each camera tells central how it is: queue, totals, fps, disk, CPU heat.

Central compares ``captured_total`` with the events it received from the camera; a gap between
them (refused or not yet delivered events) is visible on its camera page.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from app.contract import CameraHeartbeat
from app.edge import __version__
from app.edge.outbox import Outbox
from app.edge.uploader import Outcome, Uploader

log = logging.getLogger(__name__)

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")


def cpu_temperature_c(path: Path = THERMAL_ZONE) -> float | None:
    """The SoC temperature on a Raspberry Pi (millidegrees in sysfs); None elsewhere."""
    try:
        return round(int(path.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


def disk_free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


class FrameRate:
    """Frames per second and mean inference time over a sliding window."""

    def __init__(self, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self._window_s = window_s
        self._clock = clock
        self._samples: list[tuple[float, float]] = []
        self._lock = threading.Lock()

    def add(self, inference_s: float) -> None:
        now = self._clock()
        with self._lock:
            self._samples.append((now, inference_s))
            cutoff = now - self._window_s
            while self._samples and self._samples[0][0] < cutoff:
                self._samples.pop(0)

    def figures(self) -> tuple[float, float | None]:
        now = self._clock()
        with self._lock:
            recent = [s for s in self._samples if s[0] >= now - self._window_s]
        if not recent:
            return 0.0, None
        span = max(now - recent[0][0], 1e-3)
        fps = len(recent) / span if len(recent) > 1 else 0.0
        return round(fps, 2), round(1000 * sum(s[1] for s in recent) / len(recent), 2)


@dataclass
class HeartbeatSource:
    """What one camera's heartbeat is built from."""

    camera_id: str
    outbox: Outbox
    started_monotonic: float
    frame_rate: FrameRate | None = None
    reads_rejected: Callable[[], int] = lambda: 0
    last_error: Callable[[], str | None] = lambda: None

    def build(self, now: datetime, monotonic_now: float) -> CameraHeartbeat:
        stats = self.outbox.stats(self.camera_id)
        fps, inference_ms = self.frame_rate.figures() if self.frame_rate else (0.0, None)
        return CameraHeartbeat(
            sent_at=now,
            agent_version=__version__,
            uptime_s=max(0.0, monotonic_now - self.started_monotonic),
            fps=fps,
            inference_ms=inference_ms,
            outbox_depth=stats.depth,
            outbox_oldest_age_s=stats.oldest_age_s,
            outbox_bytes=stats.bytes,
            dead_letters=stats.dead_letters,
            captured_total=stats.captured_total,
            delivered_total=min(stats.delivered_total, stats.captured_total),
            reads_rejected_total=self.reads_rejected(),
            disk_free_bytes=disk_free_bytes(self.outbox.directory),
            cpu_temp_c=cpu_temperature_c(),
            last_error=_clip(self.last_error()),
        )


class HeartbeatSender:
    """A daemon thread sending each camera's heartbeat every ``interval_s``."""

    def __init__(
        self,
        sources: list[HeartbeatSource],
        uploader: Uploader,
        *,
        interval_s: float = 10.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sources = sources
        self._uploader = uploader
        self._interval_s = interval_s
        self._clock = clock
        self._monotonic = monotonic
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0

    def send_once(self) -> int:
        sent = 0
        for source in self._sources:
            try:
                heartbeat = source.build(self._clock(), self._monotonic())
                result = self._uploader.heartbeat(source.camera_id, heartbeat)
            except Exception:
                log.exception("heartbeat for %s failed", source.camera_id)
                continue
            if result is not None and result.outcome is Outcome.DELIVERED:
                sent += 1
            elif result is not None:
                log.info("heartbeat for %s not taken: %s", source.camera_id, result.error[:200])
        self.sent += sent
        return sent

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self.send_once()
            if self._stop.wait(self._interval_s):
                return

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def _clip(text: str | None) -> str | None:
    return text[:500] if text else None
