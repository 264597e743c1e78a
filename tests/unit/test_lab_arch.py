"""A machine that cannot run arm64 lab hosts says so and reports the arm64 suite as skipped
(issue 20: never a silent pass). Acted out by pointing the lab at a binfmt_misc mount point
that cannot exist; nothing is booted or mounted."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NO_BINFMT = {"LAB_BINFMT_DIR": "/nonexistent/binfmt_misc"}


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        cwd=REPO,
        env={**os.environ, **NO_BINFMT},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_arch_check_fails_with_the_reason() -> None:
    check = run("lab/lab", "arch-check", "arm64")
    assert check.returncode == 3, check
    assert "arm64 hosts need binfmt_misc" in check.stdout + check.stderr


def test_the_native_architecture_needs_no_emulation() -> None:
    native = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    check = run("lab/lab", "arch-check", native)
    assert check.returncode == 0, check


def test_the_arm64_suite_is_reported_skipped_with_the_reason() -> None:
    done = run("lab/test-arm64.sh")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "arm64 hosts cannot run on this machine" in out, out[-3000:]
    assert "SKIPPED" in out and "binfmt_misc" in out, out[-3000:]
    assert " passed" not in out, out[-3000:]
