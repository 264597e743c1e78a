"""What one running central instance holds: settings, database, live hub, limiters."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.central.db import Database
from app.central.live.hub import LiveHub
from app.central.ratelimit import TokenBucket
from app.central.settings import Settings


@dataclass
class AppState:
    settings: Settings
    db: Database
    hub: LiveHub
    jwt_key: str
    camera_limiter: TokenBucket
    login_limiter: TokenBucket
    ready_revision: str | None = None
    notes: dict[str, str] = field(default_factory=dict)
