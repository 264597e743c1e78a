"""The roles deploy Sentry: central's environment file and the edge's edge.toml, rendered from
the roles' own templates, defaults and vars (support/role_render.py), carry the DSN,
the release the role installed and the sampling, and the apps read them back as meant."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.central.settings import Settings
from app.edge.config import parse_config
from support.role_render import REPO, render, role_var

CENTRAL_WHEEL = "parking_central-0.1.0-py3-none-any.whl"
EDGE_WHEEL = "parking_edge-0.1.0-py3-none-any.whl"
DSN = "https://0123abcd@sentry.example/3"

# What build.yml sets and the inventory gives; no facts, no lookups.
CENTRAL = {
    "central_database_url": "",
    "central_jwt_secret": "s" * 32,
    "central_trusted_proxies": ["10.0.0.1"],
    "_central_release": "0123456789abcdef",
    "_central_wheel_name": CENTRAL_WHEEL,
}
EDGE = {
    "edge_camera_id": "gate-7-in",
    "edge_lot_id": "north",
    "edge_central_url": "https://vip.example",
    "edge_clock_require_sync": "floor",
    "_edge_release": "fedcba9876543210",
    "_edge_wheel_name": EDGE_WHEEL,
}


def _env_file(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, quoted = line.partition("=")
            assert quoted.startswith("'") and quoted.endswith("'"), line
            values[name] = quoted[1:-1]
    return values


def _central_env(**overrides: Any) -> dict[str, str]:
    text = render("central", "etc/parking-central/central.env.j2", {**CENTRAL, **overrides})
    return _env_file(text)


def test_central_env_names_the_installed_release_the_dsn_and_the_sampling(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = _central_env(
        vault_central_sentry_dsn=DSN, central_sentry_traces_sample_rate=0.2, central_tls=False
    )
    assert env["PARKING_SENTRY_DSN"] == DSN
    assert env["PARKING_RELEASE"] == "parking-central@0.1.0+0123456789abcdef"
    assert env["PARKING_SENTRY_TRACES_SAMPLE_RATE"] == "0.2"
    assert env["PARKING_ENVIRONMENT"] == "production"  # central_environment is Sentry's too

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PARKING_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.sentry_dsn == DSN
    assert settings.release == "parking-central@0.1.0+0123456789abcdef"
    assert settings.sentry_traces_sample_rate == 0.2
    assert settings.environment == "production"


def test_central_env_without_a_dsn_has_no_dsn_line() -> None:
    env = _central_env()
    assert "PARKING_SENTRY_DSN" not in env
    assert env["PARKING_SENTRY_TRACES_SAMPLE_RATE"] == "0.0"
    assert env["PARKING_RELEASE"].startswith("parking-central@0.1.0+")


def test_central_environment_evaluates_before_the_wheel_is_chosen() -> None:
    """preflight.yml checks every value before build.yml names the release."""
    early = {k: v for k, v in CENTRAL.items() if not k.startswith("_central_")}
    environment = role_var("central", "_central_environment", early)
    assert "RELEASE" not in environment
    assert environment["SENTRY_TRACES_SAMPLE_RATE"] == 0.0


def test_central_settings_still_override_the_sentry_keys() -> None:
    env = _central_env(central_settings={"RELEASE": "custom@1"})
    assert env["PARKING_RELEASE"] == "custom@1"


def _edge_toml(**overrides: Any) -> str:
    return render("edge", "etc/parking-edge/edge.toml.j2", {**EDGE, **overrides})


def test_edge_config_names_lot_dsn_release_and_sampling() -> None:
    text = _edge_toml(vault_edge_sentry_dsn=DSN, edge_sentry_traces_sample_rate=0.05)
    config = parse_config(tomllib.loads(text), origin="rendered edge.toml")
    assert config.camera.lot == "north"
    assert config.sentry.dsn == DSN
    assert config.sentry.release == "parking-edge@0.1.0+fedcba9876543210"
    assert config.sentry.environment == "production"
    assert config.sentry.traces_sample_rate == 0.05


def test_edge_config_without_a_dsn_reports_nothing() -> None:
    config = parse_config(tomllib.loads(_edge_toml()), origin="rendered edge.toml")
    assert config.sentry.dsn is None


def test_the_edge_config_holding_the_dsn_is_not_world_readable() -> None:
    tasks = yaml.safe_load((REPO / "roles/edge/tasks/configure.yml").read_text())
    (task,) = [
        t
        for t in tasks
        if t.get("ansible.builtin.template", {}).get("src", "").endswith("edge.toml.j2")
    ]
    assert task["ansible.builtin.template"]["mode"] == "0640"
    assert task["ansible.builtin.template"]["owner"] == "root"


@pytest.mark.parametrize(
    ("role", "names"),
    [
        ("central", ["central_sentry_dsn", "central_sentry_traces_sample_rate"]),
        ("edge", ["edge_sentry_dsn", "edge_sentry_environment", "edge_sentry_traces_sample_rate"]),
    ],
)
def test_the_sentry_variables_are_defaulted_and_specified(role: str, names: list[str]) -> None:
    root = REPO / "roles" / role
    defaults = yaml.safe_load((root / "defaults/main.yml").read_text())
    options = yaml.safe_load((root / "meta/argument_specs.yml").read_text())["argument_specs"][
        "main"
    ]["options"]
    readme = (root / "README.md").read_text()
    for name in names:
        assert name in defaults
        assert name in options
        assert f"`{name}`" in readme
    dsn = options[f"{role}_sentry_dsn"]
    assert dsn["no_log"] is True
    assert defaults[f"{role}_sentry_dsn"] == f"{{{{ vault_{role}_sentry_dsn | default('') }}}}"
