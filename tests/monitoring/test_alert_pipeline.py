"""Alerts end to end without the lab: the real Prometheus and Alertmanager from Debian scrape a
real ``parking-central serve`` on SQLite, evaluate the project's rules (``for:`` shortened as the
lab inventory shortens them) and deliver to a local webhook. Faults induced: central killed,
a camera that stops heartbeating, Prometheus killed (the deadman path). Latencies from fault
to webhook go to test-output/monitoring/alert-latency.json and the test log."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
import yaml

from tests.edge.conftest import Central, free_port, wait_until
from tests.monitoring.stack import (
    ALERTMANAGER,
    PROMETHEUS,
    REPO,
    Process,
    Webhook,
    alert_rules,
    answers,
    require_binaries,
)

# As the lab inventory shortens them (inventory/lab/group_vars/monitoring/main.yml).
FOR_OVERRIDES = {"ParkingCentralDown": "2s", "ParkingCameraOffline": "1s"}
WATCHDOG_REPEAT_S = 2
LATENCY_FILE = REPO / "test-output" / "monitoring" / "alert-latency.json"


@dataclass
class Stack:
    central: Central
    prometheus: Process
    prometheus_url: str
    alertmanager_url: str
    webhook: Webhook
    latencies: dict[str, dict[str, float]]


def _prometheus_config(central_port: int, alertmanager_port: int) -> dict[str, object]:
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules.yml"],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
        },
        "scrape_configs": [
            {
                "job_name": "parking-central",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{central_port}"], "labels": {"instance": "central1"}}
                ],
            }
        ],
    }


def _alertmanager_config(webhook_port: int) -> dict[str, object]:
    """The production route tree (roles/alertmanager) with every receiver a webhook."""
    url = f"http://127.0.0.1:{webhook_port}/"
    return {
        "route": {
            "receiver": "oncall",
            "group_by": ["alertname", "instance", "camera"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
            "routes": [
                {
                    "receiver": "deadman",
                    "matchers": ['alertname="Watchdog"'],
                    "group_wait": "0s",
                    "group_interval": "1s",
                    "repeat_interval": f"{WATCHDOG_REPEAT_S}s",
                },
                {"receiver": "oncall", "matchers": ['severity="critical"']},
                {"receiver": "chat", "matchers": ['severity="warning"']},
            ],
        },
        "inhibit_rules": [
            {
                "source_matchers": ['alertname="ParkingCentralDown"'],
                "target_matchers": ['alertname="ParkingCentralDatabaseUnreachable"'],
                "equal": ["instance"],
            }
        ],
        "receivers": [
            {"name": name, "webhook_configs": [{"url": url, "send_resolved": True}]}
            for name in ("oncall", "chat", "deadman")
        ],
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_binaries(PROMETHEUS, ALERTMANAGER, "promtool", "amtool")
    work = tmp_path_factory.mktemp("alerting")
    central = Central(data_dir=work / "central", port=free_port())
    central.data_dir.mkdir()
    central.cli("migrate")
    central.create_camera("gate-1-in", "entry", lot="main")
    central.create_camera("gate-2-in", "entry", lot="main")
    central.start()

    webhook = Webhook()
    webhook.start()
    am_port, prom_port = free_port(), free_port()
    (work / "alertmanager.yml").write_text(yaml.safe_dump(_alertmanager_config(webhook.port)))
    (work / "prometheus.yml").write_text(yaml.safe_dump(_prometheus_config(central.port, am_port)))
    (work / "rules.yml").write_text(yaml.safe_dump(alert_rules(FOR_OVERRIDES), sort_keys=False))
    alertmanager = Process(
        "alertmanager",
        [
            ALERTMANAGER,
            f"--config.file={work / 'alertmanager.yml'}",
            f"--storage.path={work / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",  # no gossip port: one instance, nothing to collide with
        ],
        work,
    )
    prometheus = Process(
        "prometheus",
        [
            PROMETHEUS,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--rules.alert.resend-delay=1s",
        ],
        work,
    )
    am_url, prom_url = f"http://127.0.0.1:{am_port}", f"http://127.0.0.1:{prom_port}"
    try:
        alertmanager.start(answers(am_url + "/-/ready"))
        prometheus.start(answers(prom_url + "/-/ready"))
        yield Stack(central, prometheus, prom_url, am_url, webhook, {})
    finally:
        prometheus.kill()
        alertmanager.kill()
        central.stop(kill=True)
        webhook.stop()


@pytest.fixture(scope="module", autouse=True)
def latency_report(stack: Stack) -> Iterator[None]:
    yield
    LATENCY_FILE.parent.mkdir(parents=True, exist_ok=True)
    LATENCY_FILE.write_text(json.dumps(stack.latencies, indent=2, sort_keys=True) + "\n")
    print("\nalert                       fire_s  resolve_s")
    for name, figures in sorted(stack.latencies.items()):
        print(f"{name:<27} {figures.get('fire_s', -1):>6.1f}  {figures.get('resolve_s', -1):>9.1f}")


def _heartbeat(central: Central, camera: str) -> None:
    response = httpx.post(
        f"{central.url}/api/v1/cameras/{camera}/heartbeat",
        headers={"X-API-Key": central.keys[camera]},
        json={"sent_at": datetime.now(UTC).isoformat(), "agent_version": "test"},
        timeout=5,
    )
    assert response.status_code == 204, response.text


def _query(stack: Stack, promql: str) -> list[dict[str, object]]:
    body = httpx.get(f"{stack.prometheus_url}/api/v1/query", params={"query": promql}, timeout=5)
    result: list[dict[str, object]] = body.json()["data"]["result"]
    return result


def test_watchdog_reaches_the_deadman_receiver_every_repeat_interval(stack: Stack) -> None:
    start = time.monotonic()
    first = stack.webhook.first("Watchdog", "firing", after=0, timeout=30, receiver="deadman")
    second = stack.webhook.first(
        "Watchdog", "firing", after=first.at + 0.5, timeout=30, receiver="deadman"
    )
    assert first.labels["severity"] == "none"
    gap = second.at - first.at
    assert gap < WATCHDOG_REPEAT_S * 4, f"watchdog repeats every {gap:.1f}s"
    stack.latencies["Watchdog"] = {"fire_s": round(first.at - start, 2), "repeat_s": round(gap, 2)}


def test_camera_that_stops_heartbeating_raises_camera_offline(stack: Stack) -> None:
    _heartbeat(stack.central, "gate-1-in")
    stopped = time.monotonic()  # its last heartbeat; gate-2-in keeps beating
    wait_until(
        lambda: _query(stack, 'parking_camera_seconds_since_heartbeat{camera="gate-1-in"}'),
        timeout=15,
        what="central's heartbeat age of gate-1-in in Prometheus",
    )
    deadline = stopped + 60
    fired = None
    while fired is None and time.monotonic() < deadline:
        _heartbeat(stack.central, "gate-2-in")
        found = stack.webhook.matching("ParkingCameraOffline", "firing", after=stopped)
        fired = found[0] if found else None
        time.sleep(0.5)
    assert fired is not None, "ParkingCameraOffline did not reach the webhook within 60s"
    assert fired.labels["camera"] == "gate-1-in"
    assert fired.labels["lot"] == "main"
    assert fired.receiver == "chat"
    offline = {d.labels["camera"] for d in stack.webhook.matching("ParkingCameraOffline", "firing")}
    assert offline == {"gate-1-in"}, f"cameras reported offline: {offline}"
    # Its threshold is 30 s without a heartbeat: it must not fire early.
    assert fired.at - stopped >= 30

    _heartbeat(stack.central, "gate-1-in")
    back = time.monotonic()
    resolved = stack.webhook.first("ParkingCameraOffline", "resolved", after=back, timeout=30)
    stack.latencies["ParkingCameraOffline"] = {
        "fire_s": round(fired.at - stopped, 2),
        "resolve_s": round(resolved.at - back, 2),
    }


def test_killed_central_raises_central_down_and_resolves_when_back(stack: Stack) -> None:
    wait_until(
        lambda: _query(stack, 'up{job="parking-central"} == 1'),
        timeout=15,
        what="Prometheus scraping central",
    )
    assert not stack.webhook.matching("ParkingCentralDown", "firing"), "fired while central was up"
    stack.central.stop(kill=True)
    killed = time.monotonic()
    fired = stack.webhook.first("ParkingCentralDown", "firing", after=killed, timeout=30)
    assert fired.labels["instance"] == "central1"
    assert fired.labels["severity"] == "critical"
    assert fired.receiver == "oncall"

    stack.central.start()
    back = time.monotonic()
    resolved = stack.webhook.first("ParkingCentralDown", "resolved", after=back, timeout=30)
    stack.latencies["ParkingCentralDown"] = {
        "fire_s": round(fired.at - killed, 2),
        "resolve_s": round(resolved.at - back, 2),
    }


def test_dead_prometheus_silences_the_watchdog_so_the_deadman_switch_trips(stack: Stack) -> None:
    stack.webhook.first("Watchdog", "firing", after=time.monotonic(), timeout=30)
    stack.prometheus.kill()
    killed = time.monotonic()
    # Alertmanager lets the Watchdog expire (endsAt = 4 x the 1 s resend delay) and says so.
    resolved = stack.webhook.first(
        "Watchdog", "resolved", after=killed, timeout=30, receiver="deadman"
    )
    quiet_from = resolved.at
    # A deadman service (healthchecks.io-style) trips when no ping came for N repeat intervals:
    # here 3 intervals must pass without any firing Watchdog.
    silence = WATCHDOG_REPEAT_S * 3
    time.sleep(silence)  # the assertion is about nothing arriving during this window
    late = stack.webhook.matching("Watchdog", "firing", after=quiet_from)
    assert not late, f"Watchdog kept arriving after Prometheus died: {len(late)} deliveries"
    stack.latencies["Watchdog(deadman)"] = {
        "fire_s": round(quiet_from - killed + silence, 2),
        "watchdog_stopped_s": round(quiet_from - killed, 2),
    }
