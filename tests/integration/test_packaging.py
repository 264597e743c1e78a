"""The deployable wheels: central's dependencies never reach the edge install, and vice versa."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CENTRAL_ONLY = {
    "fastapi",
    "sqlalchemy",
    "psycopg",
    "alembic",
    "uvicorn",
    "argon2-cffi",
    "pyjwt",
    "pydantic-settings",
}
EDGE_ONLY = {"numpy", "opencv-python-headless", "gpiozero"}


def build(component: str, out: Path) -> zipfile.ZipFile:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(out),
            str(ROOT / "packaging" / component),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob(f"parking_{component}-*.whl")
    return zipfile.ZipFile(wheel)


def requirements(wheel: zipfile.ZipFile) -> set[str]:
    (meta,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    message = Parser().parsestr(wheel.read(meta).decode())
    names = set()
    for requirement in message.get_all("Requires-Dist") or []:
        if "extra ==" in requirement:
            continue
        names.add(
            requirement.split(";")[0]
            .split("[")[0]
            .split(">")[0]
            .split("<")[0]
            .split("=")[0]
            .strip()
            .lower()
        )
    return names


@pytest.mark.parametrize(
    ("component", "forbidden_files", "forbidden_deps"),
    [
        ("edge", "app/central/", CENTRAL_ONLY),
        ("central", "app/edge/", EDGE_ONLY),
    ],
)
def test_wheel_holds_only_its_side(
    component: str, forbidden_files: str, forbidden_deps: set[str], tmp_path: Path
) -> None:
    wheel = build(component, tmp_path)
    files = wheel.namelist()
    assert any(f.startswith("app/contract/") for f in files)
    assert any(f.startswith(f"app/{component}/") for f in files)
    assert not [f for f in files if f.startswith(forbidden_files)]
    assert "app/__init__.py" not in files  # namespace package: both wheels install side by side
    assert not requirements(wheel) & forbidden_deps


def test_edge_and_contract_never_import_central() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for part in ("edge", "contract")
        for path in (ROOT / "app" / part).rglob("*.py")
        if re.search(r"^\s*(from|import)\s+app\.central", path.read_text(), re.MULTILINE)
    ]
    assert offenders == []
