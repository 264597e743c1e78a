"""What one running central instance holds: settings, database, live hub, limiters."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from app.central.core.hub import LiveHub
from app.central.core.identity import CameraIdentity
from app.central.core.waiters import CommandWaiters
from app.central.db import Database
from app.central.ratelimit import TokenBucket
from app.central.settings import Settings


class KeyCache:
    """Camera key -> identity for a few seconds, so ingest does not spend a database round
    trip per request on authentication. A rotated key stops working at once on this instance
    (``forget``) and within ``ttl_s`` on the others."""

    def __init__(self, *, ttl_s: float, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[CameraIdentity, float]] = {}
        self._lock = threading.Lock()

    def get(self, api_key: str) -> CameraIdentity | None:
        with self._lock:
            hit = self._entries.get(api_key)
        if hit is None or time.monotonic() - hit[1] > self.ttl_s:
            return None
        return hit[0]

    def put(self, api_key: str, camera: CameraIdentity) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[api_key] = (camera, time.monotonic())

    def forget(self, camera_id: str) -> None:
        with self._lock:
            for key in [k for k, (c, _) in self._entries.items() if c.id == camera_id]:
                del self._entries[key]


@dataclass
class AppState:
    settings: Settings
    db: Database
    hub: LiveHub
    jwt_key: str
    camera_limiter: TokenBucket
    login_limiter: TokenBucket
    client_failures: TokenBucket
    camera_keys: KeyCache = field(default_factory=lambda: KeyCache(ttl_s=5.0))
    command_waiters: CommandWaiters = field(default_factory=CommandWaiters)
    ready_revision: str | None = None
    # Every revision this release knows; a database at another one is ahead (a newer release
    # migrated it: rolling upgrade in progress, or a rollback), which this release can serve.
    known_revisions: frozenset[str] = frozenset()
    notes: dict[str, str] = field(default_factory=dict)
