"""One test error to Sentry, sent by central's and the edge's `sentry-test` commands after each
has started Sentry its own way (docs/monitoring.md#sentry)."""

from __future__ import annotations


class SentryTestError(RuntimeError):
    """The error `sentry-test` reports, so that it is found by its type in Sentry."""


def send_test_error(message: str, *, timeout_s: float = 10.0) -> str | None:
    """Capture a ``SentryTestError(message)`` with the running Sentry client, wait for it to
    leave, and return its event id."""
    import sentry_sdk

    try:
        raise SentryTestError(message)
    except SentryTestError as error:
        event_id = sentry_sdk.capture_exception(error)
    sentry_sdk.flush(timeout=timeout_s)
    return event_id
