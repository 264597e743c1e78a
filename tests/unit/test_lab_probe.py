"""The lab's event probe (support.lab_tier.Probe), which bench/dr_drill.py writes with: while it is
paused no request is in flight, so "acknowledged before the middle of the pause" is exact, and
every 200 is kept with the wall-clock time of its answer. Against a local HTTP server."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from support import lab_tier
from support.lab_tier import Probe, Tier

ANSWER_S = 0.05


class _Central(BaseHTTPRequestHandler):
    handled: list[tuple[float, float, str]] = []  # (arrived, answered, event_id)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        arrived = time.time()
        time.sleep(ANSWER_S)
        event_id = str(json.loads(body)["event_id"])
        self.handled.append((arrived, time.time(), event_id))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def _local_tier(port: int) -> Tier:
    class _LocalTier(Tier):
        @property
        def url(self) -> str:
            return f"http://127.0.0.1:{port}"

    return _LocalTier("127.0.0.1", "local", "central1", {}, {}, [])


@pytest.fixture
def tier(monkeypatch: pytest.MonkeyPatch) -> Iterator[Tier]:
    _Central.handled = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Central)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(lab_tier, "ca_context", lambda: False)  # plain HTTP here
    yield _local_tier(server.server_address[1])
    server.shutdown()


def test_no_request_in_flight_while_paused_and_acks_are_timed(tier: Tier) -> None:
    probe = Probe(tier, ("cam", "key"), rate=100)
    probe.start()
    pauses: list[tuple[float, float]] = []
    try:
        for _ in range(4):
            time.sleep(0.3)
            probe.pause()
            began = time.time()
            time.sleep(0.3)
            pauses.append((began, time.time()))
            probe.resume()
        time.sleep(0.3)
    finally:
        probe.stop_event.set()
        probe.join(timeout=10)

    assert len(_Central.handled) > 10
    for began, ended in pauses:
        inside = [h for h in _Central.handled if h[1] > began and h[0] < ended]
        assert not inside, f"requests served during a pause: {inside}"
    served = {uuid.UUID(event_id): answered for _, answered, event_id in _Central.handled}
    assert set(probe.acked_at) == set(served) == probe.acked
    for event_id, at in probe.acked_at.items():
        assert served[event_id] <= at < served[event_id] + 1.0
    middle = (pauses[1][0] + pauses[1][1]) / 2
    assert [e for e, _ in probe.acked_after(middle)] == [
        e for e, at in probe.acked_at.items() if at > middle
    ]
    assert list(probe.acked_at.values()) == sorted(probe.acked_at.values())
