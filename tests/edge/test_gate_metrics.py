from __future__ import annotations

from concurrent.futures import Future
from datetime import UTC, datetime
from uuid import uuid4

import httpx

from app.contract import CameraDirection, EventAck, GateAction, GateDecision, GateReason
from app.edge.config import OfflineAction
from app.edge.gate import GateController, GateOutcome, LoggingRelay, OfflinePolicy
from app.edge.metrics import EdgeMetrics, MetricsServer


def controller(
    direction: CameraDirection,
    relay: LoggingRelay,
    record: list[GateOutcome],
    policy: OfflinePolicy | None = None,
) -> GateController:
    return GateController(
        relay,
        direction=direction,
        deadline_s=0.2,
        open_pulse_s=1.5,
        policy=policy or OfflinePolicy(),
        record=record.append,
    )


def test_the_gate_follows_centrals_decision_when_it_comes_in_time() -> None:
    relay, record = LoggingRelay(), list[GateOutcome]()
    gate = controller(CameraDirection.EXIT, relay, record)
    ack: Future[EventAck] = Future()
    event_id = uuid4()
    outcome = gate.handle(event_id, ack, lambda: None)
    ack.set_result(
        EventAck(
            event_id=event_id,
            accepted_at=datetime.now(UTC),
            session_id=7,
            decision=GateDecision(action=GateAction.DENY, reason=GateReason.NO_ENTRY_RECORD),
        )
    )
    result = outcome.result(timeout=5)
    assert (result.action, result.offline, result.flagged) == (GateAction.DENY, False, False)
    assert relay.pulses == [], "a denial does not move the barrier"
    assert record == [result]
    gate.close()


def test_offline_policy_opens_the_exit_and_flags_it_when_central_is_silent() -> None:
    relay, record = LoggingRelay(), list[GateOutcome]()
    forgotten = []
    gate = controller(CameraDirection.EXIT, relay, record)
    outcome = gate.handle(uuid4(), Future(), lambda: forgotten.append(True)).result(timeout=5)
    assert (outcome.action, outcome.reason) == (GateAction.OPEN, GateReason.OFFLINE_POLICY)
    assert outcome.offline
    assert outcome.flagged
    assert relay.pulses == [1.5]
    assert forgotten == [True]
    assert record == [outcome]
    gate.close()


def test_offline_policy_can_keep_an_entry_closed() -> None:
    relay, record = LoggingRelay(), list[GateOutcome]()
    policy = OfflinePolicy(entry=OfflineAction.DENY)
    gate = controller(CameraDirection.ENTRY, relay, record, policy)
    outcome = gate.handle(uuid4(), Future(), lambda: None).result(timeout=5)
    assert (outcome.action, outcome.offline, outcome.flagged) == (GateAction.DENY, True, False)
    assert relay.pulses == []
    gate.close()


def test_metrics_endpoint_serves_queue_breaker_and_failure_figures() -> None:
    metrics = EdgeMetrics()

    class Stats:
        depth, bytes, oldest_age_s, dead_letters = 42, 1000, 3.5, 1

    metrics.bind_outbox(lambda: Stats())
    metrics.breaker_state.set(2)
    metrics.send_failures.labels("transport").inc()
    metrics.send_latency.labels("batch").observe(0.02)
    server = MetricsServer(metrics, "127.0.0.1", 0)
    try:
        text = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5).text
    finally:
        server.close()
    assert "parking_edge_outbox_depth 42.0" in text
    assert "parking_edge_breaker_state 2.0" in text
    assert 'parking_edge_send_failures_total{kind="transport"} 1.0' in text
    assert 'parking_edge_send_latency_seconds_count{endpoint="batch"} 1.0' in text
