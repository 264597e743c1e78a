"""Fixtures of the lab suite.

These tests need a lab that is up and converged with playbooks/site.yml: `make test-lab`
does both and sets PARKING_LAB=1. Without it the suite is not collected, so a bare
`pytest` elsewhere in the repository does not try to boot machines. test_edge_arm64.py needs the
opt-in arm64 edge host as well (`make test-lab-arm64` sets PARKING_LAB_ARM64=1 too): the default
lab run does not collect it.
"""

from __future__ import annotations

import os

import pytest

from tests.lab.harness import Lab, running_lab

if os.environ.get("PARKING_LAB") != "1":
    collect_ignore_glob = ["test_*.py"]
elif os.environ.get("PARKING_LAB_ARM64") != "1":
    collect_ignore = ["test_edge_arm64.py"]


@pytest.fixture(scope="session")
def lab() -> Lab:
    return running_lab("all", "lab hosts")
