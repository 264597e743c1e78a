"""Delivers the outbox to central: in capture order per camera, never twice in effect.

* One event pending for a camera: ``POST /api/v1/events`` (the live path, the gate waits).
  A backlog: ``POST /api/v1/events/batch`` with up to 100 events, one commit on central.
* Connect timeout ~2 s; after a failure, exponential backoff with full jitter, capped.
* A circuit breaker opens after K consecutive failures, lets one probe through after
  ``reset_after_s`` (half-open) and closes when the probe succeeds.
* ``Retry-After`` on 429/503 is honoured: nothing is sent before it has passed.
* A request whose connection dies under it (the Nginx host holding the VIP crashed, a keep-alive
  connection closed) is sent again at once on a fresh connection, and a connect that fails
  while the VIP moves (timeout, no route, refused) or a 502/504 from the load balancer (no
  central answered it) is tried again, within ``vip_move_budget_s`` of the first failure.
  Safe because every call is idempotent (ingest by ``event_id``); counted in
  ``parking_edge_send_reconnects_total``.
* 422 and other permanent 4xx (all but 401/408/409/425/429): the event is retried on its own
  and dead-lettered after N tries, so one bad event never blocks the ones behind it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from uuid import UUID

import httpx
from pydantic import ValidationError

from app.contract import API_PREFIX, CameraHeartbeat, EventAck, EventBatchAck
from app.edge import __version__
from app.edge.logs import event_fields
from app.edge.metrics import EdgeMetrics
from app.edge.outbox import Outbox, PendingEvent

log = logging.getLogger(__name__)

# 4xx answers that say "try again", not "this event is wrong".
RETRYABLE_4XX = frozenset({401, 408, 409, 425, 429})
# Answers that say nothing about central's health: they do not trip the breaker.
NOT_A_BREAKER_FAILURE = frozenset({401, 408, 409, 425, 429})
# The connection died under the request: whatever answered (or not) is gone with it.
CONNECTION_DIED = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
# The load balancer's own answers when it found no central to take the request.
GATEWAY_ERRORS = frozenset({502, 504})
# Tries of one call while the VIP moves, and the pause after a failure that came at once
# (refused, no route, a 502 from the load balancer).
MAX_ATTEMPTS = 6
RESEND_PAUSE_S = 0.5


class Backoff:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**(failures-1)))."""

    def __init__(self, *, base_s: float = 0.5, cap_s: float = 30.0, rng: random.Random) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self._rng = rng

    def ceiling(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        return min(self.cap_s, self.base_s * float(2 ** min(failures - 1, 32)))

    def delay(self, failures: int) -> float:
        return float(self._rng.uniform(0.0, self.ceiling(failures)))


class BreakerState(StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


BREAKER_GAUGE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class CircuitBreaker:
    """closed -(K failures)-> open -(reset_after_s)-> half-open -(probe ok)-> closed, or open."""

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        reset_after_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self.history: list[BreakerState] = [BreakerState.CLOSED]

    def _move(self, state: BreakerState) -> None:
        if state is self._state:
            return
        log.warning("circuit breaker to central: %s -> %s", self._state, state)
        self._state = state
        self.history.append(state)
        if self._on_change is not None:
            self._on_change(state)

    @property
    def state(self) -> BreakerState:
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self.reset_after_s
        ):
            self._move(BreakerState.HALF_OPEN)
        return self._state

    def allows(self) -> bool:
        return self.state is not BreakerState.OPEN

    def retry_in(self) -> float:
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.reset_after_s - self._clock())

    def record_success(self) -> None:
        self._failures = 0
        self._move(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self._failures += 1
        if self.state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
            self._move(BreakerState.OPEN)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class Outcome(StrEnum):
    DELIVERED = "delivered"
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    TOO_LARGE = "too_large"


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    status: int | None = None
    acks: list[EventAck] = field(default_factory=list)
    retry_after_s: float | None = None
    error: str = ""

    @property
    def failure_kind(self) -> str:
        if self.status is None:
            return "transport"
        if self.status >= 500:
            return "http_5xx"
        return f"http_{self.status}" if self.status in RETRYABLE_4XX | {413, 422} else "http_4xx"


class CentralClient:
    """The three calls the edge makes to central, with the contract's shapes."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 10.0,
        verify: bool | str = True,
        transport: httpx.BaseTransport | None = None,
        metrics: EdgeMetrics | None = None,
        vip_move_budget_s: float = 6.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
        self._vip_move_budget_s = vip_move_budget_s
        self._clock = clock
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + API_PREFIX,
            timeout=timeout,
            verify=verify,
            transport=transport,
            headers={"User-Agent": f"parking-edge/{__version__}"},
        )
        self._metrics = metrics

    def close(self) -> None:
        self._http.close()

    def _post(self, endpoint: str, path: str, api_key: str, body: str) -> httpx.Response:
        """One call, re-sent while the VIP or the upstream moves (see the module's notes).

        A dead connection (reset, closed without an answer), a failed connect (timed out,
        refused, no route) and a gateway error from the load balancer (502/504: it found no
        central to answer, e.g. for the seconds a killed central takes to come back) are tried
        again for ``vip_move_budget_s`` from the first failure. A read timeout is not: central
        got the request and is slow, and neither is central's own 503 with ``Retry-After``;
        the uploader's backoff and breaker deal with those.
        """
        first_failure: float | None = None
        attempts = 0
        while True:
            attempts += 1
            try:
                response = self._attempt(endpoint, path, api_key, body)
            except (*CONNECTION_DIED, httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if not self._may_resend(attempts, first_failure):
                    raise
                error, reason = type(exc).__name__, str(exc)
                # A refused connect or no route failed at once: pause before the next try.
                pause = isinstance(exc, httpx.ConnectError)
            else:
                if response.status_code not in GATEWAY_ERRORS or not self._may_resend(
                    attempts, first_failure
                ):
                    return response
                error, reason = f"http_{response.status_code}", response.text[:80]
                pause = True  # no central answered the load balancer: the same, pause
            # The budget counts from the first failure, not from the send: a request sent on
            # a connection to a host that just died learns it only when the new VIP holder
            # resets a retransmission, which TCP's backoff may put 6 s later.
            first_failure = self._clock() if first_failure is None else first_failure
            log.info("%s: %s: %s; sending again on a fresh connection", path, error, reason)
            if self._metrics is not None:
                self._metrics.send_reconnects.labels(error).inc()
            if pause:
                self._sleep(RESEND_PAUSE_S)

    def _may_resend(self, attempts: int, first_failure: float | None) -> bool:
        if attempts >= MAX_ATTEMPTS or self._vip_move_budget_s <= 0:
            return False
        return first_failure is None or (self._clock() - first_failure < self._vip_move_budget_s)

    def _attempt(self, endpoint: str, path: str, api_key: str, body: str) -> httpx.Response:
        started = time.perf_counter()
        try:
            return self._http.post(
                path,
                content=body.encode(),
                headers={"X-API-Key": api_key, "Content-Type": "application/json"},
            )
        finally:
            if self._metrics is not None:
                self._metrics.send_latency.labels(endpoint).observe(time.perf_counter() - started)

    def send_events(self, api_key: str, events: Sequence[PendingEvent]) -> SendResult:
        if len(events) == 1:
            endpoint, path, body = "event", "/events", events[0].wire_json()
        else:
            endpoint, path = "batch", "/events/batch"
            body = '{"events":[' + ",".join(e.wire_json() for e in events) + "]}"
        try:
            response = self._post(endpoint, path, api_key, body)
        except httpx.TransportError as exc:
            return SendResult(Outcome.TRANSIENT, error=f"{type(exc).__name__}: {exc}")
        if response.status_code == 200:
            try:
                if len(events) == 1:
                    acks = [EventAck.model_validate_json(response.content)]
                else:
                    acks = EventBatchAck.model_validate_json(response.content).acks
            except ValidationError as exc:
                return SendResult(Outcome.TRANSIENT, 200, error=f"unreadable ack: {exc}")
            if [a.event_id for a in acks] != [e.event_id for e in events]:
                return SendResult(Outcome.TRANSIENT, 200, error="acks do not match the events")
            return SendResult(Outcome.DELIVERED, 200, acks=acks)
        return _failure(response)

    def send_heartbeat(
        self, api_key: str, camera_id: str, heartbeat: CameraHeartbeat
    ) -> SendResult:
        try:
            response = self._post(
                "heartbeat", f"/cameras/{camera_id}/heartbeat", api_key, heartbeat.model_dump_json()
            )
        except httpx.TransportError as exc:
            return SendResult(Outcome.TRANSIENT, error=f"{type(exc).__name__}: {exc}")
        if response.status_code in (200, 202, 204):
            return SendResult(Outcome.DELIVERED, response.status_code)
        return _failure(response)


def _failure(response: httpx.Response) -> SendResult:
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("Retry-After"), datetime.now(UTC))
    detail = response.text[:300]
    if status == 413:
        return SendResult(Outcome.TOO_LARGE, status, error=detail)
    if status in RETRYABLE_4XX or status >= 500 or status < 400:
        return SendResult(Outcome.TRANSIENT, status, retry_after_s=retry_after, error=detail)
    return SendResult(Outcome.PERMANENT, status, error=detail)


class DeliveryFailed(Exception):
    """Set on a gate waiter's future when its event was dead-lettered."""


class Uploader:
    """Drains the outbox to central from one thread; ``wake()`` after each enqueue."""

    def __init__(
        self,
        outbox: Outbox,
        client: CentralClient,
        api_keys: Mapping[str, str],
        *,
        breaker: CircuitBreaker,
        backoff: Backoff,
        batch_max_events: int = 100,
        batch_max_bytes: int = 900_000,
        clock: Callable[[], float] = time.monotonic,
        metrics: EdgeMetrics | None = None,
    ) -> None:
        self._outbox = outbox
        self._client = client
        self._api_keys = dict(api_keys)
        self.breaker = breaker
        self._backoff = backoff
        self._batch_max_events = batch_max_events
        self._batch_max_bytes = batch_max_bytes
        self._clock = clock
        self._metrics = metrics
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._not_before = 0.0
        self._round_robin = 0
        # Events at or before this seq (per camera) go one by one: a batch had a bad one.
        self._singles_until: dict[str, int] = {}
        self._batch_cap: dict[str, int] = {}
        self._cap_successes: dict[str, int] = {}
        self._waiters: dict[UUID, Future[EventAck]] = {}
        self._waiters_lock = threading.Lock()
        self.last_error: str | None = None
        self.delivered_total = 0

    # -- gate waiters ------------------------------------------------------------------

    def waiter(self, event_id: UUID) -> Future[EventAck]:
        """A future resolved with central's ack for ``event_id`` (register before ``wake``)."""
        future: Future[EventAck] = Future()
        with self._waiters_lock:
            self._waiters[event_id] = future
        return future

    def forget_waiter(self, event_id: UUID) -> None:
        with self._waiters_lock:
            self._waiters.pop(event_id, None)

    def _resolve(self, event_id: UUID, ack: EventAck | None, error: str = "") -> None:
        with self._waiters_lock:
            future = self._waiters.pop(event_id, None)
        if future is None or future.done():
            return
        if ack is not None:
            future.set_result(ack)
        else:
            future.set_exception(DeliveryFailed(error))

    # -- the loop ----------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="uploader", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                wait_s = self.step()
            except Exception:  # a bug must not stop delivery for good; log and slow down
                log.exception("uploader step failed")
                wait_s = 1.0
            if wait_s > 0:
                self._wake.wait(wait_s)

    def step(self) -> float:
        """Send one batch if allowed. Returns how long to wait before the next step (0: now)."""
        now = self._clock()
        if now < self._not_before:
            return self._not_before - now
        if not self.breaker.allows():
            return max(0.05, self.breaker.retry_in())
        cameras = self._outbox.pending_cameras()
        if not cameras:
            return 1.0
        camera = sorted(cameras)[self._round_robin % len(cameras)]
        self._round_robin += 1
        limit = self._batch_cap.get(camera, self._batch_max_events)
        if self.breaker.state is BreakerState.HALF_OPEN:
            limit = 1  # the probe: one event
        events = self._outbox.pending(camera, limit=limit, max_wire_bytes=self._batch_max_bytes)
        if not events:
            return 0.0
        if events[0].seq <= self._singles_until.get(camera, -1):
            events = events[:1]
        api_key = self._api_keys.get(camera)
        if api_key is None:
            self.last_error = f"no API key configured for camera {camera}"
            log.error("uploader: %s; its events wait", self.last_error)
            return 5.0
        return self._deliver(camera, api_key, events)

    def _deliver(self, camera: str, api_key: str, events: list[PendingEvent]) -> float:
        if log.isEnabledFor(logging.DEBUG):
            for event in events:
                log.debug(
                    "uploader: sending event %s of %s (%d in this request)",
                    event.event_id,
                    camera,
                    len(events),
                    extra=event_fields(event.event_id, camera, seq=event.seq, outcome="sending"),
                )
        result = self._client.send_events(api_key, events)
        if result.outcome is Outcome.DELIVERED:
            self.breaker.record_success()
            self._failures = 0
            self._outbox.mark_delivered(events)
            self.delivered_total += len(events)
            if self._metrics is not None:
                self._metrics.events_delivered.labels(camera).inc(len(events))
            for ack in result.acks:
                self._log_ack(camera, ack)
                self._resolve(ack.event_id, ack)
            if camera in self._batch_cap:
                # After a 413, grow back slowly: one big snapshot should not pin batches small.
                self._cap_successes[camera] = self._cap_successes.get(camera, 0) + 1
                if self._cap_successes[camera] >= 8:
                    self._cap_successes[camera] = 0
                    cap = self._batch_cap[camera] * 2
                    self._batch_cap[camera] = min(self._batch_max_events, cap)
            return 0.0
        if self._metrics is not None:
            self._metrics.send_failures.labels(result.failure_kind).inc()
        self.last_error = f"{result.failure_kind}: {result.error[:200]}"
        if result.outcome is Outcome.TOO_LARGE and len(events) > 1:
            self._batch_cap[camera] = max(1, len(events) // 2)
            self._cap_successes[camera] = 0
            return 0.0
        if result.outcome in (Outcome.PERMANENT, Outcome.TOO_LARGE):
            # Central answered, so it is healthy: not a breaker failure.
            self.breaker.record_success()
            if len(events) > 1:
                self._singles_until[camera] = events[-1].seq
                return 0.0
            head = events[0]
            dead = self._outbox.record_failure(
                head, status=result.status, error=result.error, permanent=True
            )
            if dead:  # the outbox logged it
                if self._metrics is not None:
                    self._metrics.events_dead_lettered.labels(camera).inc()
                self._resolve(head.event_id, None, f"dead-lettered: {result.status}")
            else:
                log.warning(
                    "uploader: central refused event %s of %s (%s); it is tried again",
                    head.event_id,
                    camera,
                    self.last_error,
                    extra=event_fields(
                        head.event_id, camera, outcome="refused", status=result.status
                    ),
                )
            return 0.0
        # Transient: wait, in order, and let the breaker judge central's health.
        self._outbox.record_failure(
            events[0], status=result.status, error=result.error, permanent=False
        )
        if result.status not in NOT_A_BREAKER_FAILURE:
            self.breaker.record_failure()
        if result.status == 401:
            log.error("central refuses the API key of camera %s (401)", camera)
        self._failures += 1
        delay = self._backoff.delay(self._failures)
        if result.retry_after_s is not None:
            delay = max(delay, result.retry_after_s)
        self._not_before = self._clock() + delay
        log.warning(
            "uploader: send of %d event(s) for %s failed (%s); next try in %.2fs",
            len(events),
            camera,
            self.last_error,
            delay,
            extra={
                "camera_id": camera,
                "event_ids": [str(e.event_id) for e in events],
                "outcome": "retrying",
                "status": result.status,
            },
        )
        return delay

    @staticmethod
    def _log_ack(camera: str, ack: EventAck) -> None:
        if log.isEnabledFor(logging.INFO):
            action = ack.decision.action.value
            log.info(
                "uploader: event %s of %s delivered: %s",
                ack.event_id,
                camera,
                action,
                extra=event_fields(
                    ack.event_id,
                    camera,
                    outcome="delivered",
                    action=action,
                    session_id=ack.session_id,
                ),
            )

    def heartbeat(self, camera_id: str, heartbeat: CameraHeartbeat) -> SendResult | None:
        """Send a heartbeat unless the breaker is open or central asked for a pause (it is a
        side channel, never a probe)."""
        api_key = self._api_keys.get(camera_id)
        if api_key is None or not self.breaker.allows() or self._clock() < self._not_before:
            return None
        result = self._client.send_heartbeat(api_key, camera_id, heartbeat)
        if result.retry_after_s is not None:
            # Central asked everyone to hold off; the event path honours it too.
            self._not_before = max(self._not_before, self._clock() + result.retry_after_s)
        return result
