"""lab/clockshift.c, the soak's edge clock step: preloaded into a Python process it moves the wall
clock (time.time, datetime.now, SQLite's clock) by the offset in its file, back and forth while
the process runs, and leaves the monotonic clock and sleeping alone (what Debian's libfaketime
got wrong with Python 3.11)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import datetime, json, sqlite3, sys, time
def stamp():
    return {
        "time": time.time(),
        "now": datetime.datetime.now(datetime.UTC).timestamp(),
        "sqlite": sqlite3.connect(":memory:").execute("SELECT unixepoch('now')").fetchone()[0],
        "mono": time.monotonic(),
    }
first = stamp()
open(sys.argv[1], "w").write(sys.argv[2])  # the step, while the process runs
time.sleep(0.5)  # must not fail (libfaketime's EINVAL) and must take real time
second = stamp()
print(json.dumps([first, second]))
"""


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (lab/install-deps.sh installs gcc for the soak)")
    out = tmp_path_factory.mktemp("clockshift") / "clockshift.so"
    subprocess.run(
        [cc, "-O2", "-shared", "-fPIC", "-o", str(out), str(REPO / "lab" / "clockshift.c"), "-ldl"],
        check=True,
    )
    return out


@pytest.mark.parametrize("step_s", [3600.0, -250.0])
def test_the_wall_clock_steps_and_the_monotonic_clock_does_not(
    library: Path, tmp_path: Path, step_s: float
) -> None:
    offset = tmp_path / "offset-ns"
    offset.write_text("0")
    env = {**os.environ, "LD_PRELOAD": str(library), "CLOCKSHIFT_FILE": str(offset)}
    before = time.time()
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(offset), str(int(step_s * 1e9))],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    after = time.time()
    first, second = json.loads(done.stdout)
    for clock in ("time", "now", "sqlite"):
        assert before - 2 <= first[clock] <= after + 2, (clock, first)
        assert abs(second[clock] - first[clock] - step_s) < 3, (clock, first, second)
    assert 0.45 < second["mono"] - first["mono"] < 5, "the monotonic clock ran on, unstepped"


def test_without_its_file_the_clock_is_the_machines(library: Path, tmp_path: Path) -> None:
    env = {**os.environ, "LD_PRELOAD": str(library), "CLOCKSHIFT_FILE": str(tmp_path / "none")}
    done = subprocess.run(
        [sys.executable, "-c", "import time; print(time.time())"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert abs(float(done.stdout) - time.time()) < 5
