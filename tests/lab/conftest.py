"""Fixtures of the lab suite.

These tests need a lab that is up and converged with playbooks/site.yml: `make test-lab`
does both and sets PARKING_LAB=1. Without it the suite is not collected, so a bare
`pytest` elsewhere in the repository does not try to boot machines.
"""

from __future__ import annotations

import os

import pytest

from tests.lab.harness import REPO, Lab

if os.environ.get("PARKING_LAB") != "1":
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def lab() -> Lab:
    handle = Lab(REPO)
    expected = handle.hosts("all")
    running = {name for name, state in handle.status().items() if state == "running"}
    missing = sorted(set(expected) - running)
    if missing:
        pytest.fail(f"lab hosts not running: {missing}; run `make lab-up lab-converge` first")
    return handle
