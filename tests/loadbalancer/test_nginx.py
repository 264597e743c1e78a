"""roles/nginx's site config in front of two real centrals on one PostgreSQL, through real
nginx over TLS: failover without a failed request, no duplicate events, the live feed, and
the edges of the config (redirect, headers, body size, rate limits, stub_status)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from support.waiting import wait_until
from tests.loadbalancer.conftest import (
    PASSWORD,
    REPO,
    SERVER_NAME,
    Stack,
    check_site,
    site_template,
)

pytestmark = pytest.mark.timeout(240)

SENDERS = 4
BEFORE_KILL = 150
AFTER_KILL = 300


def event(camera_id: str = "lane-in") -> dict[str, object]:
    plate = f"51A{uuid.uuid4().int % 10**6:06d}"
    return {
        "event_id": str(uuid.uuid4()),
        "camera_id": camera_id,
        "captured_at": datetime.now(UTC).isoformat(),
        "plate": plate,
        "confidence": 0.95,
        "vehicle_type": "car",
    }


@dataclass
class Load:
    """Edge-like senders posting unique events through nginx, one attempt each: a request
    that does not get 200 counts as failed (no client retry hides a failover gap)."""

    stack: Stack
    acked: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    replays: int = 0
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (sent at, seconds)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        headers = {"X-API-Key": self.stack.camera_key}
        with self.stack.client(headers=headers) as client:
            while not self.stop.is_set():
                body = event()
                started = time.monotonic()
                try:
                    response = client.post("/api/v1/events", json=body)
                    outcome = (
                        None
                        if response.status_code == 200
                        else f"{response.status_code} {response.text[:200]}"
                    )
                except httpx.HTTPError as error:
                    response, outcome = None, f"{type(error).__name__}: {error}"
                elapsed = time.monotonic() - started
                with self.lock:
                    self.latencies.append((started, elapsed))
                    if outcome is None and response is not None:
                        self.acked.append(str(body["event_id"]))
                        self.replays += response.headers.get("X-Idempotent-Replay") == "true"
                    else:
                        self.failures.append(f"{body['event_id']}: {outcome}")

    def count(self) -> int:
        with self.lock:
            return len(self.acked)


def _stored(stack: Stack, event_ids: list[str]) -> tuple[int, int]:
    dsn = stack.database_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM plate_events"
            " WHERE event_id::text = ANY(%s)",
            (event_ids,),
        ).fetchone()
        assert rows is not None
        return int(rows[0]), int(rows[1])


def test_the_role_renders_the_top_level_site_template_through_its_validator() -> None:
    """The reviewable file in nginx/ is what the role writes, checked by nginx -t first."""
    assert site_template() == REPO / "nginx" / "parking.conf.j2"
    assert site_template().is_file()
    tasks = yaml.safe_load((REPO / "roles/nginx/tasks/configure.yml").read_text())
    (task,) = [t["ansible.builtin.template"] for t in tasks if "ansible.builtin.template" in t]
    assert task["src"] == "{{ nginx_site_template }}"
    assert task["dest"] == "/etc/nginx/conf.d/parking.conf"
    assert task["validate"] == "/usr/local/sbin/parking-nginx-check %s"
    specs = yaml.safe_load((REPO / "roles/nginx/meta/argument_specs.yml").read_text())
    assert "nginx_site_template" in specs["argument_specs"]["main"]["options"]


def test_rendered_site_passes_the_role_validator_and_a_broken_one_fails(
    stack: Stack, tmp_path: Path
) -> None:
    good = check_site(stack.site)
    assert good.returncode == 0, f"validator refused the rendered site: {good.stderr}"
    broken = tmp_path / "broken.conf"
    broken.write_text(
        stack.site.read_text().replace("proxy_connect_timeout", "proxy_connect_timeout_typo", 1)
    )
    bad = check_site(broken)
    assert bad.returncode != 0, "validator accepted a config with an unknown directive"
    assert "proxy_connect_timeout_typo" in bad.stderr


def test_killing_the_active_central_fails_no_request_and_duplicates_no_event(stack: Stack) -> None:
    stack.ensure_centrals()
    load = Load(stack)
    threads = [threading.Thread(target=load.run, daemon=True) for _ in range(SENDERS)]
    for thread in threads:
        thread.start()
    try:
        wait_until(
            lambda: load.count() >= BEFORE_KILL,
            timeout=60,
            what=f"{BEFORE_KILL} acks before the kill",
        )
        killed_at = time.monotonic()
        stack.active.kill()
        at_kill = load.count()
        wait_until(
            lambda: load.count() >= at_kill + AFTER_KILL,
            timeout=90,
            what=f"{AFTER_KILL} acks after the kill",
        )
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(timeout=30)

    after = [(started, took) for started, took in load.latencies if started + took >= killed_at]
    worst = max(took for _, took in after)
    log = stack.access_log.read_text()
    retried = sum(
        1
        for line in log.splitlines()
        if "/api/v1/events" in line and ", " in line.split("upstream=")[1]
    )
    stored, distinct = _stored(stack, load.acked)
    report = {
        "acked": len(load.acked),
        "failed": len(load.failures),
        "replays": load.replays,
        "retried_by_nginx": retried,
        "worst_latency_after_kill_s": round(worst, 3),
        "stored": stored,
    }
    print("failover:", json.dumps(report))
    assert load.failures == [], f"requests failed during the kill: {load.failures[:5]} ({report})"
    assert stored == distinct == len(load.acked), f"acked events missing or duplicated: {report}"
    assert worst < 5, f"a request waited {worst:.2f} s across the failover: {report}"


def _token(stack: Stack) -> str:
    with stack.client() as client:
        response = client.post(
            "/api/v1/auth/token", data={"username": "admin", "password": PASSWORD}
        )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _live(stack: Stack, token: str) -> ClientConnection:
    return connect(
        f"wss://{SERVER_NAME}:{stack.https_port}/api/v1/live?token={token}",
        ssl=stack.ssl_context(),
        open_timeout=10,
        close_timeout=2,
    )


def _receive_until(ws: ClientConnection, kind: str, timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {kind!r} message on the live feed within {timeout} s")
        message: dict[str, object] = json.loads(ws.recv(timeout=remaining))
        if message.get("type") == kind:
            return message


def test_live_feed_through_nginx_outlives_the_proxy_read_timeout_thanks_to_pings(
    stack: Stack,
) -> None:
    stack.ensure_centrals()
    with _live(stack, _token(stack)) as ws:
        _receive_until(ws, "hello", 10)
        # nginx closes a connection silent for 3 pings (3 s here): stay 5 s, idle but for pings.
        deadline = time.monotonic() + 5
        pings = 0
        while time.monotonic() < deadline:
            pings += _receive_until(ws, "ping", 3)["type"] == "ping"
        assert pings >= 3, f"expected a ping every ~1 s through nginx, saw {pings} in 5 s"
        with stack.client(headers={"X-API-Key": stack.camera_key}) as client:
            sent = event()
            assert client.post("/api/v1/events", json=sent).status_code == 200
        seen = _receive_until(ws, "plate_event", 10)
        data = seen["data"]
        assert isinstance(data, dict) and data["event_id"] == sent["event_id"], f"not ours: {seen}"


def test_live_feed_client_reconnects_through_nginx_after_the_active_central_dies(
    stack: Stack,
) -> None:
    stack.ensure_centrals()
    token = _token(stack)
    with _live(stack, token) as ws:
        _receive_until(ws, "hello", 10)
        stack.active.kill()
        started = time.monotonic()
        with pytest.raises(ConnectionClosed):
            _receive_until(ws, "never", 10)
    with _live(stack, token) as again:
        _receive_until(again, "hello", 10)
        print(f"live feed: reconnected {time.monotonic() - started:.2f} s after the kill")


def test_http_redirects_to_https(stack: Stack) -> None:
    response = httpx.get(
        f"http://127.0.0.1:{stack.http_port}/api/health?x=1", headers={"Host": SERVER_NAME}
    )
    assert response.status_code == 301
    assert (
        response.headers["location"] == f"https://{SERVER_NAME}:{stack.https_port}/api/health?x=1"
    )


def test_answers_carry_security_headers_even_errors(stack: Stack) -> None:
    stack.ensure_centrals()
    with stack.client() as client:
        for path in ("/api/health/live", "/metrics", "/api/v1/no-such-thing"):
            response = client.get(path)
            assert "max-age=" in response.headers.get("strict-transport-security", ""), (
                path,
                response.headers,
            )
            assert response.headers.get("x-content-type-options") == "nosniff", path
            assert response.headers.get("x-frame-options") == "DENY", path
            assert "nginx/" not in response.headers.get("server", ""), "server_tokens must be off"


def test_metrics_are_not_public_but_stub_status_is_on_loopback(stack: Stack) -> None:
    with stack.client() as client:
        assert client.get("/metrics").status_code == 404
    status = httpx.get(f"http://127.0.0.1:{stack.status_port}/stub_status")
    assert status.status_code == 200 and "Active connections" in status.text
    assert httpx.get(f"http://127.0.0.1:{stack.status_port}/healthz").text == "ok\n"


def test_body_over_the_snapshot_limit_is_refused_by_nginx(stack: Stack) -> None:
    with stack.client(headers={"X-API-Key": stack.camera_key}) as client:
        response = client.post(
            "/api/v1/events",
            content=b"x" * (1024 * 1024 + 1),
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 413


def test_login_attempts_are_rate_limited(stack: Stack) -> None:
    stack.ensure_centrals()

    # All at once: sent one after another, slow logins (argon2 on a busy machine) would let
    # the 30 r/min bucket refill between them and no attempt would exceed the burst of 10.
    def attempt(_: int) -> int:
        with stack.client() as client:
            return client.post(
                "/api/v1/auth/token", data={"username": "nobody", "password": "x"}
            ).status_code

    with ThreadPoolExecutor(max_workers=25) as pool:
        statuses = list(pool.map(attempt, range(25)))
    assert 429 in statuses, f"no 429 after 25 simultaneous logins (burst 10): {statuses}"
    assert statuses.count(401) >= 10, f"the burst of 10 must reach central: {statuses}"


# --- nginx -> central over mutual TLS ------------------------------------------------------


def test_a_central_answers_only_a_client_certificate_of_its_ca(stack: Stack) -> None:
    """The hop behind nginx: HTTPS only, and no answer without a certificate from the CA."""
    central = stack.active
    stack.ensure_centrals()
    ok = httpx.get(f"{central.url}/api/health/live", verify=stack.pki.upstream_context())
    assert ok.status_code == 200
    # The CA checks the central, but the client shows nothing: the handshake fails.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{central.url}/api/health/live", verify=stack.ssl_context(), timeout=5)
    # Plain HTTP on the TLS port gets no HTTP answer either.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://{central.address}/api/health/live", timeout=5)


def test_a_client_certificate_of_another_ca_is_refused(stack: Stack, tmp_path: Path) -> None:
    import ssl

    from tests.loadbalancer.conftest import make_pki

    stranger = make_pki(tmp_path / "stranger")  # same names, another CA's key
    context = ssl.create_default_context(cafile=str(stack.pki.ca))
    context.load_cert_chain(str(stranger.upstream_cert), str(stranger.upstream_key))
    stack.ensure_centrals()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{stack.active.url}/api/health/live", verify=context, timeout=5)


def test_nginx_checks_the_centrals_certificate(stack: Stack) -> None:
    """The rendered site verifies the upstream against the internal CA by the shared name."""
    site = stack.site.read_text()
    assert "proxy_ssl_verify on;" in site
    assert f"proxy_ssl_trusted_certificate {stack.pki.ca};" in site
    assert "proxy_pass https://parking_central;" in site
    assert "proxy_pass http://" not in site
