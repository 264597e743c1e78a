"""Backoff, breaker, Retry-After and the uploader's handling of answers (httpx mock transport);
the same behaviours against the real central are in test_central_faults.py."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from uuid import UUID

import httpx
from prometheus_client import generate_latest

from app.contract import EventAck, GateAction, GateDecision, GateReason
from app.edge.metrics import EdgeMetrics
from app.edge.outbox import Outbox, PendingEvent
from app.edge.uploader import (
    Backoff,
    BreakerState,
    CentralClient,
    CircuitBreaker,
    Uploader,
    parse_retry_after,
)
from tests.edge.helpers import jpeg, make_event

Handler = Callable[[httpx.Request], httpx.Response]


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """Read the state through a call: it changes with time, which mypy's narrowing ignores."""
    return breaker.state


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_full_jitter_stays_between_zero_and_the_capped_ceiling() -> None:
    backoff = Backoff(base_s=0.5, cap_s=8.0, rng=random.Random(7))
    assert [backoff.ceiling(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    samples = [backoff.delay(6) for _ in range(2000)]
    assert 0.0 <= min(samples) < 0.5, "full jitter reaches down to zero"
    assert 7.5 < max(samples) <= 8.0, "and up to the cap, never beyond"


def test_breaker_opens_after_k_failures_half_opens_and_closes_on_a_good_probe() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_after_s=10.0, clock=clock)
    for _ in range(2):
        breaker.record_failure()
    assert state_of(breaker) is BreakerState.CLOSED
    breaker.record_failure()
    assert state_of(breaker) is BreakerState.OPEN
    assert not breaker.allows()
    clock.now += 9.9
    assert state_of(breaker) is BreakerState.OPEN
    assert abs(breaker.retry_in() - 0.1) < 1e-6
    clock.now += 0.1
    assert state_of(breaker) is BreakerState.HALF_OPEN
    assert breaker.allows()
    breaker.record_failure()  # the probe failed: open again, a fresh wait
    assert state_of(breaker) is BreakerState.OPEN
    clock.now += 10
    assert state_of(breaker) is BreakerState.HALF_OPEN
    breaker.record_success()
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.history == ["closed", "open", "half_open", "open", "half_open", "closed"]


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def _ack(event_id: str) -> dict[str, object]:
    ack: dict[str, object] = json.loads(
        EventAck(
            event_id=UUID(event_id),
            accepted_at=datetime.now(UTC),
            session_id=None,
            decision=GateDecision(action=GateAction.OPEN, reason=GateReason.ENTRY_ALLOWED),
        ).model_dump_json()
    )
    return ack


def _uploader(outbox: Outbox, handler: Handler, clock: FakeClock) -> Uploader:
    # No re-sends inside a call: these tests are about what the uploader does with a failure.
    client = CentralClient(
        "http://central.test",
        transport=httpx.MockTransport(handler),
        vip_move_budget_s=0,
    )
    return Uploader(
        outbox,
        client,
        {"edge-in": "key"},
        breaker=CircuitBreaker(failure_threshold=2, reset_after_s=5, clock=clock),
        backoff=Backoff(base_s=1, cap_s=4, rng=random.Random(1)),
        clock=clock,
    )


def test_a_422_in_a_batch_dead_letters_that_event_and_delivers_the_others(tmp_path: Path) -> None:
    calls: list[tuple[str, int]] = []

    def central(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        events = body["events"] if request.url.path.endswith("/batch") else [body]
        calls.append((request.url.path, len(events)))
        if any(e["plate"] == "BAD999" for e in events):
            return httpx.Response(422, json={"detail": "no"})
        acks = [_ack(e["event_id"]) for e in events]
        return httpx.Response(
            200, json={"acks": acks} if len(events) > 1 or "batch" in request.url.path else acks[0]
        )

    clock = FakeClock()
    with Outbox(tmp_path, max_permanent_attempts=2) as outbox:
        plates = ["GOOD01", "BAD999", "GOOD02", "GOOD03"]
        events = [make_event(plate=p) for p in plates]
        for event in events:
            outbox.enqueue(event, jpeg(200))
        uploader = _uploader(outbox, central, clock)
        for _ in range(10):
            assert uploader.step() in (0.0, 1.0)
            if not outbox.pending_cameras():
                break
        assert outbox.stats().depth == 0
        assert [d.event_id for d in outbox.dead_letters()] == [events[1].event_id]
        assert outbox.delivered_ids() == {events[i].event_id for i in (0, 2, 3)}
        assert calls[0] == ("/api/v1/events/batch", 4)
        assert ("/api/v1/events", 1) in calls, "the bad batch was split into single sends"
        assert state_of(uploader.breaker) is BreakerState.CLOSED, "a 422 says central is healthy"


def test_413_halves_the_batch_instead_of_failing(tmp_path: Path) -> None:
    sizes: list[int] = []

    def central(request: httpx.Request) -> httpx.Response:
        events = json.loads(request.content)["events"]
        sizes.append(len(events))
        if len(events) > 3:
            return httpx.Response(413, json={"detail": "too large"})
        return httpx.Response(200, json={"acks": [_ack(e["event_id"]) for e in events]})

    with Outbox(tmp_path) as outbox:
        for i in range(12):
            outbox.enqueue(make_event(plate=f"LM{i:04d}"), None)
        uploader = _uploader(outbox, central, FakeClock())
        while outbox.pending_cameras():
            uploader.step()
        assert sizes == [12, 6, 3, 3, 3, 3]
        assert outbox.stats().delivered_total == 12


def test_429_retry_after_is_honoured_and_does_not_trip_the_breaker(tmp_path: Path) -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "30"}), httpx.Response(429), None])

    def central(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        if answer is not None:
            return answer
        return httpx.Response(200, json=_ack(json.loads(request.content)["event_id"]))

    clock = FakeClock()
    with Outbox(tmp_path) as outbox:
        outbox.enqueue(make_event(), None)
        uploader = _uploader(outbox, central, clock)
        wait = uploader.step()
        assert wait >= 30.0, "Retry-After: 30 sets the earliest next try"
        clock.now += 29.0
        assert uploader.step() > 0.9, "nothing is sent before Retry-After has passed"
        clock.now += 1.0
        wait = uploader.step()  # second 429, no header: backoff only
        assert 0 <= wait <= 2.0
        assert state_of(uploader.breaker) is BreakerState.CLOSED
        clock.now += wait
        assert uploader.step() == 0.0
        assert outbox.stats().delivered_total == 1


def test_transport_failures_open_the_breaker_and_a_successful_probe_closes_it(
    tmp_path: Path,
) -> None:
    up = {"value": False}
    probe_sizes: list[int] = []

    def central(request: httpx.Request) -> httpx.Response:
        if not up["value"]:
            raise httpx.ConnectError("refused")
        body = json.loads(request.content)
        events = body.get("events", [body])
        probe_sizes.append(len(events))
        acks = [_ack(e["event_id"]) for e in events]
        return httpx.Response(200, json={"acks": acks} if "events" in body else acks[0])

    clock = FakeClock()
    with Outbox(tmp_path) as outbox:
        for i in range(5):
            outbox.enqueue(make_event(plate=f"NP{i:04d}"), None)
        uploader = _uploader(outbox, central, clock)
        clock.now += uploader.step()
        uploader.step()
        assert state_of(uploader.breaker) is BreakerState.OPEN
        clock.now += 5.0
        up["value"] = True
        uploader._not_before = 0.0
        assert state_of(uploader.breaker) is BreakerState.HALF_OPEN
        uploader.step()
        assert probe_sizes == [1], "half-open lets exactly one event through as the probe"
        assert state_of(uploader.breaker) is BreakerState.CLOSED
        uploader.step()
        assert probe_sizes == [1, 4]


def pending(tmp_path: Path, plate: str) -> PendingEvent:
    """One event as the uploader takes it from the outbox."""
    with Outbox(tmp_path / plate) as outbox:
        outbox.enqueue(make_event(plate=plate), None)
        return outbox.pending("edge-in")[0]


def _flaky_central(failures: list[Exception | httpx.Response]) -> tuple[list[int], Handler]:
    """Raises or answers ``failures`` in turn, then acknowledges; returns (attempts, handler)."""
    attempts = [0]

    def central(request: httpx.Request) -> httpx.Response:
        attempts[0] += 1
        if failures:
            failure = failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure
        return httpx.Response(200, json=_ack(json.loads(request.content)["event_id"]))

    return attempts, central


def test_a_connection_that_dies_mid_request_is_sent_again_on_a_fresh_one(tmp_path: Path) -> None:
    metrics = EdgeMetrics()
    attempts, central = _flaky_central(
        [httpx.RemoteProtocolError("Server disconnected"), httpx.ConnectTimeout("timed out")]
    )
    client = CentralClient(
        "http://central.test",
        transport=httpx.MockTransport(central),
        metrics=metrics,
    )
    result = client.send_events("key", [pending(tmp_path, "NP0001")])
    assert result.outcome.value == "delivered", result
    assert attempts[0] == 3
    text = generate_latest(metrics.registry).decode()
    assert 'parking_edge_send_reconnects_total{error="RemoteProtocolError"} 1.0' in text
    assert 'parking_edge_send_reconnects_total{error="ConnectTimeout"} 1.0' in text


def test_the_reconnect_budget_bounds_how_long_one_call_keeps_trying(tmp_path: Path) -> None:
    clock = FakeClock()

    def central(request: httpx.Request) -> httpx.Response:
        clock.now += 2.0  # each connect attempt times out after 2 s
        raise httpx.ConnectTimeout("timed out")

    client = CentralClient(
        "http://central.test",
        transport=httpx.MockTransport(central),
        vip_move_budget_s=3.0,
        clock=clock,
    )
    result = client.send_events("key", [pending(tmp_path, "NP0002")])
    assert result.outcome.value == "transient" and "ConnectTimeout" in result.error
    assert clock.now - 1000.0 == 6.0, "fails at 2, 4 and 6 s; 3 s after the first, it stops"


def test_a_late_reset_still_gets_its_fresh_connection(tmp_path: Path) -> None:
    """A request on a connection to a crashed host learns it only when a retransmission is
    reset by the new VIP holder, possibly after the whole budget: it is still sent again."""
    clock = FakeClock()
    calls = [0]

    def central(request: httpx.Request) -> httpx.Response:
        calls[0] += 1
        if calls[0] == 1:
            clock.now += 6.7
            raise httpx.ReadError("connection reset by peer")
        return httpx.Response(200, json=_ack(json.loads(request.content)["event_id"]))

    client = CentralClient(
        "http://central.test",
        transport=httpx.MockTransport(central),
        vip_move_budget_s=6.0,
        clock=clock,
    )
    result = client.send_events("key", [pending(tmp_path, "NP0004")])
    assert result.outcome.value == "delivered", result
    assert calls[0] == 2


def test_a_refused_connect_is_tried_again_after_a_pause(tmp_path: Path) -> None:
    pauses: list[float] = []
    attempts, central = _flaky_central(
        [httpx.ConnectError("[Errno 113] No route to host"), httpx.ConnectError("refused")]
    )
    client = CentralClient(
        "http://central.test",
        transport=httpx.MockTransport(central),
        sleep=pauses.append,
    )
    result = client.send_events("key", [pending(tmp_path, "NP0003")])
    assert result.outcome.value == "delivered", result
    assert attempts[0] == 3 and pauses == [0.5, 0.5]


def test_a_read_timeout_is_not_sent_again(tmp_path: Path) -> None:
    attempts, central = _flaky_central([httpx.ReadTimeout("slow")])
    client = CentralClient("http://central.test", transport=httpx.MockTransport(central))
    result = client.send_events("key", [pending(tmp_path, "NP0005")])
    assert result.outcome.value == "transient" and "ReadTimeout" in result.error
    assert attempts[0] == 1


def test_a_gateway_error_from_the_load_balancer_is_sent_again_but_not_centrals_503(
    tmp_path: Path,
) -> None:
    _, central = _flaky_central(
        [
            httpx.Response(502, text="<html>502 Bad Gateway</html>"),
            httpx.Response(504, text="<html>504 Gateway Time-out</html>"),
        ]
    )
    pauses: list[float] = []
    metrics = EdgeMetrics()
    client = CentralClient(
        "http://central.test",
        transport=httpx.MockTransport(central),
        metrics=metrics,
        sleep=pauses.append,
    )
    result = client.send_events("key", [pending(tmp_path, "NP0006")])
    assert result.outcome.value == "delivered", result
    assert pauses == [0.5, 0.5]
    text = generate_latest(metrics.registry).decode()
    assert 'parking_edge_send_reconnects_total{error="http_502"} 1.0' in text

    calls = [0]

    def busy(request: httpx.Request) -> httpx.Response:
        calls[0] += 1
        return httpx.Response(503, headers={"Retry-After": "2"}, json={"detail": "db down"})

    client = CentralClient("http://central.test", transport=httpx.MockTransport(busy))
    result = client.send_events("key", [pending(tmp_path, "NP0007")])
    assert result.outcome.value == "transient" and result.retry_after_s == 2.0
    assert calls[0] == 1, "central's own 503 goes to the uploader's Retry-After handling"
