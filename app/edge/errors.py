"""Unhandled errors of the agent go to Sentry, tagged with environment, release, lane and lot."""

from __future__ import annotations

import importlib.metadata
import os

from app.edge import __version__
from app.edge.config import SentryConfig

DSN_ENV = "PARKING_EDGE_SENTRY_DSN"


def default_release(distribution: str = "parking-edge") -> str:
    """``parking-edge@<version>`` of the installed wheel; the source tree's version when the
    agent runs from a checkout."""
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        version = __version__
    return f"{distribution}@{version}"


def init_error_reporting(config: SentryConfig, *, camera_id: str, lot: str | None = None) -> bool:
    """Start the Sentry SDK when a DSN is configured; True when it was started.

    Every event carries the tags ``lane`` (the camera id) and ``lot``, besides the environment
    and release (roles/edge sets ``parking-edge@<version>+<release id>``).
    """
    dsn = os.environ.get(DSN_ENV) or config.dsn
    if not dsn:
        return False
    import sentry_sdk

    sentry_sdk.init(
        dsn=dsn,
        environment=config.environment,
        release=config.release or default_release(),
        traces_sample_rate=config.traces_sample_rate,
    )
    tags = {"lane": camera_id, "camera_id": camera_id}  # camera_id: the tag's former name
    if lot:
        tags["lot"] = lot
    sentry_sdk.get_global_scope().set_tags(tags)  # every thread's events, not one scope's
    return True
