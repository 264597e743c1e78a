"""The alert rules, the roles' rendered configuration and the Grafana dashboards, checked by
the real promtool and amtool: every rule has a promtool unit test and a runbook page, every
template renders for both inventories and passes its program's own check, every panel's
query parses."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring.stack import REPO, RULES, require_binaries

RULES_TEST = REPO / "tests" / "monitoring" / "rules_test.yml"
DASHBOARDS = REPO / "monitoring" / "grafana" / "dashboards"
# Stand-ins for the vault's secrets (production.example holds CHANGE_ME placeholders only).
FAKE_VAULT = {
    "vault_alertmanager_smtp_password": "smtp-secret",
    "vault_alertmanager_slack_webhook_url": "https://hooks.slack.com/services/T0/B0/x",
    "vault_alertmanager_telegram_bot_token": "123456:telegram-token",
    "vault_alertmanager_deadman_url": "https://hc-ping.com/00000000-0000-0000-0000-000000000000",
    "vault_grafana_admin_password": "grafana-admin-secret",
}
ANSIBLE_PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def _alerts() -> list[dict[str, Any]]:
    rules = yaml.safe_load(RULES.read_text())
    return [r for g in rules["groups"] for r in g["rules"] if "alert" in r]


def test_rules_pass_promtool_check() -> None:
    require_binaries("promtool")
    result = _run("promtool", "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_in_a_promtool_unit_test() -> None:
    tests = yaml.safe_load(RULES_TEST.read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    silent = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if not case.get("exp_alerts")
    }
    names = {a["alert"] for a in _alerts()}
    assert names - fired == set(), f"alerts never shown firing: {sorted(names - fired)}"
    assert names - {"Watchdog"} - silent == set(), (
        f"alerts never shown silent: {sorted(names - {'Watchdog'} - silent)}"
    )


def test_promtool_unit_tests_pass() -> None:
    require_binaries("promtool")
    result = subprocess.run(
        ["promtool", "test", "rules", RULES_TEST.name],
        cwd=RULES_TEST.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_severity_and_an_existing_runbook_page() -> None:
    for alert in _alerts():
        assert alert["labels"]["severity"] in {"critical", "warning", "none"}, alert["alert"]
        url = alert["annotations"]["runbook_url"]
        match = re.search(r"/docs/runbooks/([a-z0-9-]+\.md)$", url)
        assert match, f"{alert['alert']}: runbook_url {url} is not a docs/runbooks page"
        page = REPO / "docs" / "runbooks" / match.group(1)
        assert page.exists(), f"{alert['alert']}: {page} missing"
        assert alert["alert"] in page.read_text(), f"{page.name} does not mention {alert['alert']}"


@pytest.mark.parametrize(
    ("inventory", "host"), [("inventory/lab", "mon1"), ("inventory/production.example", None)]
)
def test_role_templates_render_and_pass_promtool_and_amtool(
    inventory: str, host: str | None, tmp_path: Path
) -> None:
    require_binaries("promtool", "amtool")
    if not ANSIBLE_PLAYBOOK.exists():
        pytest.skip("ansible is not in .venv: make lab-deps")
    if host is None:
        hosts = yaml.safe_load((REPO / inventory / "hosts.yml").read_text())
        host = next(iter(hosts["all"]["children"]["monitoring"]["hosts"]))
    result = subprocess.run(
        [
            str(ANSIBLE_PLAYBOOK),
            "-i",
            inventory,
            "tests/monitoring/render/render.yml",
            "--tags",
            "render",
            "-e",
            f"out={tmp_path} host={host}",
            "-e",
            json.dumps(FAKE_VAULT if inventory != "inventory/lab" else {}),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    # Mutual-TLS jobs name the client certificate roles/pki places on the host: promtool wants
    # the files to exist, so point them at stand-ins here.
    prom = (tmp_path / "prometheus" / "prometheus.yml").read_text()
    tls_dir = tmp_path / "prometheus-tls"
    tls_dir.mkdir()
    for name in ("ca.crt", "prometheus.crt", "prometheus.key"):
        (tls_dir / name).write_text("stand-in\n")
    checked_prom = tmp_path / "prometheus-check.yml"
    checked_prom.write_text(prom.replace("/etc/prometheus/tls", str(tls_dir)))
    config = _run("promtool", "check", "config", str(checked_prom))
    assert config.returncode == 0, config.stdout + config.stderr
    jobs = {job["job_name"]: job for job in yaml.safe_load(prom)["scrape_configs"]}
    for name in ("parking-central", "patroni"):  # central and Patroni answer mutual TLS only
        assert jobs[name]["scheme"] == "https", jobs[name]
        assert jobs[name]["tls_config"]["cert_file"] == "/etc/prometheus/tls/prometheus.crt"
    rendered = yaml.safe_load((tmp_path / "prometheus" / "parking-alerts.yml").read_text())
    alerts = {r["alert"]: r for g in rendered["groups"] for r in g["rules"] if "alert" in r}
    assert set(alerts) == {a["alert"] for a in _alerts()}
    if inventory == "inventory/lab":  # shortened for the drills
        assert alerts["ParkingCentralDown"]["for"] == "5s"
    else:
        assert alerts["ParkingCentralDown"]["for"] == "1m"
    # amtool resolves the templates glob: point it at the rendered templates.
    am = (tmp_path / "alertmanager.yml").read_text()
    am = am.replace(
        "/etc/prometheus/alertmanager_templates", str(tmp_path / "alertmanager_templates")
    )
    (tmp_path / "alertmanager-check.yml").write_text(am)
    checked = _run("amtool", "check-config", str(tmp_path / "alertmanager-check.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    receivers = {r["name"]: r for r in yaml.safe_load(am)["receivers"]}
    assert set(receivers) == {"oncall", "chat", "deadman"}
    if inventory != "inventory/lab":
        assert {"email_configs", "telegram_configs", "slack_configs"} <= set(receivers["oncall"])
    datasource = json.loads((tmp_path / "grafana" / "datasource.yaml").read_text())
    assert datasource["datasources"][0]["uid"] == "parking-prometheus"
    json.loads((tmp_path / "grafana" / "dashboards.yaml").read_text())


def _panel_queries() -> list[tuple[str, str]]:
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for variable in dashboard["templating"]["list"]:
            found.append((f"{path.name}:${variable['name']}", variable["query"]))
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == "parking-prometheus", (path.name, panel["title"])
            for target in panel["targets"]:
                found.append((f"{path.name}:{panel['title']}", target["expr"]))
    return found


def test_dashboards_cover_the_five_views_with_unique_uids() -> None:
    names = {p.stem for p in DASHBOARDS.glob("*.json")}
    assert names == {"overview", "central", "database", "edge", "hosts"}
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS.glob("*.json")]
    assert len(set(uids)) == len(uids)


def test_every_panel_query_parses_with_promtool(tmp_path: Path) -> None:
    require_binaries("promtool")
    rules = []
    for i, (where, expr) in enumerate(_panel_queries()):
        # Grafana's variables become what Grafana would substitute.
        expr = expr.replace("$__rate_interval", "1m").replace("$instance", ".*")
        label = re.fullmatch(r"label_values\((.+), *(\w+)\)", expr)
        if label:
            expr = f"count by ({label.group(2)}) ({label.group(1)})"
        rules.append({"record": f"panel:q{i}", "expr": expr, "labels": {"where": where}})
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    result = _run("promtool", "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout
