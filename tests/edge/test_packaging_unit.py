"""The hand-install unit (packaging/edge/parking-edge.service) is the role's template, rendered."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from support.scripts import load_script

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "packaging" / "edge" / "render-unit.py"


def render_unit_module() -> ModuleType:
    return load_script(SCRIPT, "render_unit")


def test_the_committed_unit_is_the_rendered_role_template() -> None:
    rendered = render_unit_module().render()
    committed = (REPO / "packaging" / "edge" / "parking-edge.service").read_text(encoding="utf-8")
    assert committed == rendered, (
        "packaging/edge/parking-edge.service differs from roles/edge's template: "
        "run python packaging/edge/render-unit.py"
    )


def test_the_rendered_unit_is_the_hand_install() -> None:
    unit = render_unit_module().render()
    assert (
        "ExecStart=/opt/parking-edge/bin/parking-edge run --config /etc/parking-edge/edge.toml\n"
        in unit
    )
    assert "Wants=network-online.target time-sync.target\n" in unit
    assert "After=network-online.target time-sync.target\n" in unit
    assert "{{" not in unit and "{%" not in unit


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_finds_nothing_but_the_missing_agent(tmp_path: Path) -> None:
    unit = tmp_path / "parking-edge.service"
    unit.write_text(render_unit_module().render(), encoding="utf-8")
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    complaints = [
        line
        for line in verify.stderr.splitlines()
        if line.strip() and "/opt/parking-edge/bin/parking-edge is not executable" not in line
    ]
    assert complaints == []
