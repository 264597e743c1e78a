"""The docs that map the repository name every folder in it: README.md's layout table and
docs/architecture.md. A folder added without a word there fails here."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def tracked_top_level_folders() -> set[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    return {f"{path.split('/', 1)[0]}/" for path in listed.split("\0") if "/" in path}


def readme_layout() -> set[str]:
    """The top-level folder of each row of README.md's layout table (`app/edge/` -> `app/`)."""
    text = (REPO / "README.md").read_text()
    table = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    return {m.group(1) for m in re.finditer(r"^\| `([^`/]+/)", table, re.MULTILINE)}


def test_the_readme_layout_table_names_every_top_level_folder() -> None:
    missing = tracked_top_level_folders() - readme_layout()
    assert not missing, f"README.md's layout table misses {sorted(missing)}"


@pytest.mark.parametrize("folder", sorted(tracked_top_level_folders()))
def test_the_architecture_page_names_every_top_level_folder(folder: str) -> None:
    page = (REPO / "docs" / "architecture.md").read_text()
    assert f"`{folder}" in page, f"docs/architecture.md does not name {folder}"
