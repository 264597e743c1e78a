"""Unhandled errors of the agent go to Sentry, tagged with environment and release."""

from __future__ import annotations

import os

from app.edge import __version__
from app.edge.config import SentryConfig

DSN_ENV = "PARKING_EDGE_SENTRY_DSN"


def init_error_reporting(config: SentryConfig, *, camera_id: str) -> bool:
    """Start the Sentry SDK when a DSN is configured; True when it was started."""
    dsn = os.environ.get(DSN_ENV) or config.dsn
    if not dsn:
        return False
    import sentry_sdk

    sentry_sdk.init(
        dsn=dsn,
        environment=config.environment,
        release=config.release or f"parking-edge@{__version__}",
        traces_sample_rate=0.0,
    )
    sentry_sdk.set_tag("camera_id", camera_id)
    return True
