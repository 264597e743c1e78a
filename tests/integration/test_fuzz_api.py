"""The whole API fuzzed from its own OpenAPI schema (schemathesis): no answer is a server error
and every answer matches the schema, for an operator (admin: every route is reachable) and for
a camera key. Against the real ``parking-central serve`` on SQLite; at least 2,000 cases."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from support.central import CentralProcess
from support.pg import free_port

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
PASSWORD = "fuzz-admin-password"
# The lane's long poll waits up to 30 s per call by design; it is exercised by its own tests.
EXCLUDE = r"/lanes/[^/]+/commands$"
MIN_CASES = 2000


def fuzz(central: CentralProcess, header: str, report: Path, seed: int) -> tuple[int, int, str]:
    """One schemathesis run; (generated, passed, output)."""
    done = subprocess.run(
        [
            str(SCHEMATHESIS), "run", f"{central.url}/openapi.json",
            "-H", header,
            "--checks", "not_a_server_error,response_schema_conformance",
            "--max-examples", "25",
            "--seed", str(seed),
            "--exclude-path-regex", EXCLUDE,
            "--request-timeout", "10",
            "--generation-database", "none",
            "--no-color",
            "--report", "junit", "--report-dir", str(report),
        ],
        capture_output=True, text=True, timeout=900, check=False, cwd=report.parent,
    )  # fmt: skip
    output = done.stdout + done.stderr
    found = re.search(r"(\d+) generated, (\d+) passed", output)
    assert found, f"schemathesis printed no case counts (exit {done.returncode}):\n{output[-4000:]}"
    generated, passed = int(found.group(1)), int(found.group(2))
    assert done.returncode == 0, f"schemathesis found failures:\n{output[-6000:]}"
    return generated, passed, output


@pytest.mark.timeout(1500)
def test_no_server_error_and_no_schema_violation_for_any_generated_request(
    tmp_path: Path,
) -> None:
    if not SCHEMATHESIS.exists() and shutil.which("schemathesis") is None:
        pytest.fail("schemathesis is not installed (pip install -e '.[dev]')")
    central = CentralProcess(
        tmp_path / "central",
        free_port(),
        env_extra={
            "PARKING_LOG_LEVEL": "WARNING",
            "PARKING_LOGIN_ATTEMPTS_PER_MIN": "100000",
            "PARKING_CLIENT_FAILURES_PER_MIN": "100000",
            "PARKING_CAMERA_RATE_PER_S": "100000",
            "PARKING_CAMERA_BURST": "100000",
        },
    )
    central.data_dir.mkdir()
    central.cli("migrate")
    central.cli("create-user", "fuzz-admin", "--role", "admin", stdin=PASSWORD + "\n")
    key = central.create_camera("fuzz-cam", "exit", "fuzz-lot")
    central.start()
    try:
        token = httpx.post(
            f"{central.url}/api/v1/auth/token",
            data={"username": "fuzz-admin", "password": PASSWORD},
        ).json()["access_token"]
        # The camera first: the operator's run may rotate the camera's key.
        camera = fuzz(central, f"X-API-Key: {key}", tmp_path / "camera", seed=1)
        operator = fuzz(central, f"Authorization: Bearer {token}", tmp_path / "operator", seed=2)
        generated = camera[0] + operator[0]
        print(f"schemathesis: camera {camera[0]} cases, operator {operator[0]} cases")
        assert camera[0] == camera[1] and operator[0] == operator[1]
        assert generated >= MIN_CASES, f"only {generated} cases generated"
        # The admin is still in (nobody may disable the last admin or themselves).
        me = httpx.get(
            f"{central.url}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}
        )
        assert me.status_code == 200
        log = central.log.read_text()
        assert "Traceback" not in log, log[-4000:]
    finally:
        central.stop()
