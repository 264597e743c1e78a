"""Outage, circuit breaker and Retry-After against the real central process."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from app.contract import CameraDirection, PlateCandidate, VehicleType
from app.edge.agent import EdgeRuntime, Lane, RuntimeSettings, synthetic_plate
from app.edge.uploader import BreakerState
from tests.edge.conftest import Central, wait_until

# The issue asks for 60 s; the default keeps the suite fast, the env var runs the full one.
OUTAGE_S = float(os.environ.get("PARKING_EDGE_OUTAGE_S", "8"))


def runtime_for(url: str, central: Central, data_dir: Path, **overrides: float) -> EdgeRuntime:
    settings = RuntimeSettings(
        central_url=url,
        data_dir=data_dir,
        backoff_base_s=0.1,
        backoff_cap_s=overrides.pop("backoff_cap_s", 1.0),
        breaker_failures=int(overrides.pop("breaker_failures", 3)),
        breaker_reset_s=overrides.pop("breaker_reset_s", 1.0),
        heartbeat_interval_s=3600,
    )
    lanes = [Lane("edge-in", CameraDirection.ENTRY, central.keys["edge-in"])]
    return EdgeRuntime.build(settings, lanes)


def capture(runtime: EdgeRuntime, plate: str) -> None:
    runtime.capture(
        runtime.lanes[0],
        captured_at=datetime.now(UTC),
        plate=plate,
        confidence=0.9,
        candidates=[PlateCandidate(plate=plate, confidence=0.9)],
        vehicle_type=VehicleType.CAR,
        snapshot=None,
    )


def test_central_down_events_queue_and_all_drain_in_capture_order_when_it_returns(
    central: Central, tmp_path: Path
) -> None:
    runtime = runtime_for(central.url, central, tmp_path)
    runtime.start()
    try:
        rng = random.Random(60)
        capture(runtime, synthetic_plate(rng))
        wait_until(runtime.drained, timeout=10, what="the first event to be delivered")
        central.stop()
        started = time.monotonic()
        produced = 0
        while time.monotonic() - started < OUTAGE_S:
            capture(runtime, synthetic_plate(rng))
            produced += 1
            time.sleep(0.05)  # ~20 vehicles a second during the outage
        stats = runtime.outbox.stats()
        assert stats.depth == produced, "nothing is delivered while central is down"
        assert BreakerState.OPEN in runtime.uploader.breaker.history
        queued = runtime.outbox.pending_ids()
        central.start()
        wait_until(runtime.drained, timeout=30, what="the backlog to drain")
        assert runtime.uploader.breaker.state is BreakerState.CLOSED
    finally:
        runtime.close()
    stored = [i for i in central.event_ids("edge-in") if i in set(queued)]
    assert stored == queued, "central stored the backlog in capture order"


class FaultProxy:
    """Forwards to central; answers 429 with Retry-After for the next ``throttle`` requests."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.throttle = 0
        self.retry_after = "1"
        self.seen: list[tuple[float, int]] = []  # event posts only: (when, status)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                is_event = "/events" in self.path
                if proxy.throttle > 0 and is_event:
                    proxy.throttle -= 1
                    proxy.seen.append((time.monotonic(), 429))
                    self.send_response(429)
                    self.send_header("Retry-After", proxy.retry_after)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                answer = httpx.post(
                    proxy.target + self.path,
                    content=body,
                    timeout=10,
                    headers={
                        k: v
                        for k, v in self.headers.items()
                        if k.lower() in ("x-api-key", "content-type")
                    },
                )
                if is_event:
                    proxy.seen.append((time.monotonic(), answer.status_code))
                self.send_response(answer.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(central: Central) -> Iterator[FaultProxy]:
    fault = FaultProxy(central.url)
    yield fault
    fault.close()


def test_429_retry_after_is_respected_before_the_event_goes_through(
    central: Central, proxy: FaultProxy, tmp_path: Path
) -> None:
    proxy.throttle, proxy.retry_after = 2, "1"
    runtime = runtime_for(proxy.url, central, tmp_path, backoff_cap_s=0.05)
    runtime.start()
    try:
        capture(runtime, "RA-0429")
        wait_until(runtime.drained, timeout=15, what="delivery after the 429s")
    finally:
        runtime.close()
    statuses = [status for _, status in proxy.seen]
    assert statuses == [429, 429, 200]
    gaps = [b[0] - a[0] for a, b in zip(proxy.seen, proxy.seen[1:], strict=False)]
    assert all(gap >= 0.95 for gap in gaps), f"sent again before Retry-After: gaps {gaps}"
    assert runtime.uploader.breaker.history == [BreakerState.CLOSED], "429 is not an outage"


def test_breaker_opens_half_opens_and_closes_against_a_stopped_and_restarted_central(
    central: Central, tmp_path: Path
) -> None:
    runtime = runtime_for(
        central.url, central, tmp_path, breaker_failures=2, breaker_reset_s=0.5, backoff_cap_s=0.1
    )
    breaker = runtime.uploader.breaker
    central.stop()
    runtime.start()
    try:
        capture(runtime, "BR-0001")
        # Two refused connections open it; after 0.5 s one probe fails and opens it again.
        wait_until(
            lambda: breaker.history.count(BreakerState.OPEN) >= 2,
            timeout=15,
            what="open -> half-open -> open",
        )
        assert breaker.history[:4] == ["closed", "open", "half_open", "open"]
        central.start()
        wait_until(runtime.drained, timeout=15, what="delivery once central is back")
        assert breaker.history[-2:] == ["half_open", "closed"]
    finally:
        runtime.close()
