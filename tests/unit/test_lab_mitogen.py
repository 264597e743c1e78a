"""lab/lib.sh's lab_mitogen: the lab's converges run Mitogen's strategy unless LAB_MITOGEN=0,
and a venv without Mitogen stops the run with the way out instead of silently running slower.
Acted out with a stand-in venv whose Python sees a stand-in ansible_mitogen package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHOW = (
    "source lab/lib.sh; lab_mitogen; "
    'echo "strategy=${ANSIBLE_STRATEGY:-} plugins=${ANSIBLE_STRATEGY_PLUGINS:-}"'
)


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").symlink_to(sys.executable)
    return tmp_path


def run(venv: Path, pythonpath: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "LAB_"))}
    clean["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        ["bash", "-c", SHOW],
        cwd=REPO,
        env={**clean, "VENV": str(venv), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def stand_in_mitogen(root: Path) -> Path:
    strategy = root / "ansible_mitogen" / "plugins" / "strategy"
    strategy.mkdir(parents=True)
    for package in (root / "ansible_mitogen", root / "ansible_mitogen" / "plugins", strategy):
        (package / "__init__.py").write_text("")
    (strategy / "mitogen_linear.py").write_text("")
    return strategy


def test_mitogen_is_the_default_strategy(venv: Path, tmp_path: Path) -> None:
    strategy = stand_in_mitogen(tmp_path / "site")
    done = run(venv, tmp_path / "site")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"strategy=mitogen_linear plugins={strategy}"


def test_lab_mitogen_0_leaves_ansibles_own_strategy(venv: Path, tmp_path: Path) -> None:
    stand_in_mitogen(tmp_path / "site")
    done = run(venv, tmp_path / "site", LAB_MITOGEN="0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "strategy= plugins="


def test_a_venv_without_mitogen_stops_with_the_way_out(venv: Path, tmp_path: Path) -> None:
    # A package that fails to import hides a real Mitogen the test's own Python may have.
    absent = tmp_path / "site" / "ansible_mitogen"
    absent.mkdir(parents=True)
    (absent / "__init__.py").write_text("raise ImportError('not installed')\n")
    done = run(venv, tmp_path / "site")
    assert done.returncode == 1
    assert "strategy=" not in done.stdout
    assert "mitogen is not installed" in done.stderr
    assert "LAB_MITOGEN=0" in done.stderr
