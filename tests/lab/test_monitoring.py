"""The monitoring tier after playbooks/site.yml, seen from outside: Prometheus scrapes every
target the inventory names, runs every rule of the repository with the lab's 5 s `for:`,
Alertmanager delivers to the lab's recorder, the exporters answer the monitoring host only,
and every Grafana panel query runs on the live Prometheus."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from typing import Any

import yaml

from tests.lab.harness import CURL_OK, CURL_TIMEOUT, REPO, Lab, in_parallel, wait_until

RULES = REPO / "monitoring" / "prometheus" / "rules" / "parking-alerts.yml"
DASHBOARDS = REPO / "monitoring" / "grafana" / "dashboards"
# job -> inventory group whose every host must be a healthy target (inventory/lab group_vars).
JOBS = {
    "node": "all",
    "parking-central": "central",
    "patroni": "db",
    "postgres": "db",
    "nginx": "lb",
    "parking-edge": "edge",
    "alertmanager": "monitoring",
    "prometheus": "monitoring",
}


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 (lab address)
        return json.load(answer)


def _monitor(lab: Lab) -> tuple[str, str]:
    return next(iter(lab.hosts("monitoring").items()))


def _prometheus(lab: Lab) -> str:
    return f"http://{_monitor(lab)[1]}:9090"


def test_prometheus_scrapes_every_inventory_target_and_all_are_up(lab: Lab) -> None:
    targets = _get(f"{_prometheus(lab)}/api/v1/targets?state=active")["data"]["activeTargets"]
    seen = {(t["labels"]["job"], t["labels"]["instance"]): t for t in targets}
    for job, group in JOBS.items():
        expected = set(lab.hosts(group))
        found = {instance for (j, instance) in seen if j == job}
        assert found == expected, (
            f"{job}: scrapes {sorted(found)}, inventory has {sorted(expected)}"
        )
    down = {key: target["lastError"] for key, target in seen.items() if target["health"] != "up"}
    assert not down, f"targets down: {down}"


def test_vip_certificate_expiry_is_probed(lab: Lab) -> None:
    vip = "https://10.77.0.30/api/health/live"
    query = urllib.parse.urlencode({"query": f'probe_ssl_earliest_cert_expiry{{instance="{vip}"}}'})
    rows = _get(f"{_prometheus(lab)}/api/v1/query?{query}")["data"]["result"]
    assert rows, "no certificate expiry read from the VIP"
    assert float(rows[0]["value"][1]) > float(rows[0]["value"][0]) + 14 * 86400


def test_every_rule_of_the_repository_runs_with_the_lab_for(lab: Lab) -> None:
    source = yaml.safe_load(RULES.read_text())
    alerts = {r["alert"]: r for g in source["groups"] for r in g["rules"] if "alert" in r}
    groups = _get(f"{_prometheus(lab)}/api/v1/rules?type=alert")["data"]["groups"]
    loaded = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(loaded) == set(alerts)
    for name, rule in loaded.items():
        assert rule["health"] == "ok", f"{name}: {rule.get('lastError')}"
        assert rule["duration"] == (5 if "for" in alerts[name] else 0), name
        assert rule["annotations"]["runbook_url"].endswith(
            alerts[name]["annotations"]["runbook_url"].rsplit("/", 1)[1]
        )


def test_watchdog_reaches_the_recorder_every_repeat_interval(lab: Lab) -> None:
    recorder = f"http://{_monitor(lab)[1]}:9099"
    start = _get(f"{recorder}/-/healthy")["deliveries"]

    def watchdog_times() -> list[float]:
        return [
            row["received"]
            for row in _get(f"{recorder}/deliveries?after={start}")
            for alert in row["payload"]["alerts"]
            if alert["labels"]["alertname"] == "Watchdog" and alert["status"] == "firing"
        ]

    wait_until(lambda: len(watchdog_times()) >= 2, "two Watchdog deliveries", timeout=60)
    times = watchdog_times()
    # Alertmanager re-sends on its group_interval tick once repeat_interval (10 s) has passed.
    assert times[1] - times[0] <= 25, f"Watchdog deliveries {times} (repeat interval 10 s)"


def test_exporters_answer_the_monitoring_host_only(lab: Lab) -> None:
    monitor = _monitor(lab)[0]
    outsider = next(iter(lab.hosts("edge")))
    db = next(iter(lab.hosts("db")))
    lb = next(iter(lab.hosts("lb")))
    central = next(iter(lab.hosts("central")))
    checks = [(db, 9187), (lb, 9113), (central, 8000)]
    seen = in_parallel(lambda c: (lab.probe(monitor, *c), lab.probe(outsider, *c)), checks)
    # curl's http://host:port/ is enough: an answer of any status is CURL_OK.
    assert seen == [(CURL_OK, CURL_TIMEOUT)] * len(checks), dict(zip(checks, seen, strict=True))


def test_exporters_report_their_services(lab: Lab) -> None:
    monitor = _monitor(lab)[0]
    db = next(iter(lab.hosts("db")))
    lb = next(iter(lab.hosts("lb")))
    pg = lab.sh(monitor, f"curl -sS --max-time 5 http://{lab.address(db)}:9187/metrics").stdout
    assert re.search(r"^pg_up 1$", pg, re.M), "postgres_exporter does not reach PostgreSQL"
    nginx = lab.sh(monitor, f"curl -sS --max-time 5 http://{lab.address(lb)}:9113/metrics").stdout
    assert re.search(r"^nginx_up 1$", nginx, re.M), "the nginx exporter does not read stub_status"
    # Patroni answers mutual TLS only: Prometheus's client certificate on the monitoring host.
    tls = (
        "--cacert /etc/prometheus/tls/ca.crt --cert /etc/prometheus/tls/prometheus.crt"
        " --key /etc/prometheus/tls/prometheus.key"
    )
    patroni = lab.sh(
        monitor, f"curl -sS --max-time 5 {tls} https://{lab.address(db)}:8008/metrics"
    ).stdout
    assert "patroni_primary" in patroni


def test_every_grafana_panel_query_runs_on_the_live_prometheus(lab: Lab) -> None:
    monitor = _monitor(lab)[0]
    provisioned = lab.sh(monitor, "ls /var/lib/grafana/dashboards/parking").stdout.split()
    assert sorted(provisioned) == sorted(p.name for p in DASHBOARDS.glob("*.json"))
    failed = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        queries = [v["query"] for v in dashboard["templating"]["list"]]
        queries += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
        for expr in queries:
            expr = re.sub(r"\$__(rate_)?interval", "1m", expr)
            expr = re.sub(r"\$\{?\w+\}?", ".*", expr)
            label = re.fullmatch(r"label_values\((.+), *(\w+)\)", expr.strip())
            if label:
                expr = f"count by ({label.group(2)}) ({label.group(1)})"
            query = urllib.parse.urlencode({"query": expr})
            try:
                _get(f"{_prometheus(lab)}/api/v1/query?{query}")
            except OSError as error:
                failed.append(f"{path.name}: {expr}: {error}")
    assert not failed, failed
